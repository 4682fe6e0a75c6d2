import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setupDom } from '../support/domEnv';
import { exportMessage, safeFileName, serializeSvg, toCsv, toJson } from '../../webview/charts/export';
import { answerBars } from '../../webview/charts/answerBars';
import { coerceRouting, packRouting, unpackRouting } from '../../webview/common/arrays';
import { syntheticRouting } from '../support/synthetic';

const env = setupDom();

test('toCsv: quoting, empty cells, formula injection guarded', () => {
  const csv = toCsv(
    ['a', 'b', 'c'],
    [
      ['x,y', 'say "hi"', null],
      ['=HYPERLINK("x")', -1.5, 'line\nbreak'],
    ],
  );
  assert.equal(csv, 'a,b,c\r\n"x,y","say ""hi""",\r\n"\'=HYPERLINK(""x"")",-1.5,"line\nbreak"\r\n');
});

test('toJson writes typed arrays as arrays', () => {
  assert.equal(JSON.parse(toJson({ a: new Float32Array([1, 2]), b: new Uint16Array([3]) })).a.length, 2);
  assert.deepEqual(JSON.parse(toJson({ b: new Uint16Array([3]) })), { b: [3] });
});

test('exportMessage: safe file names', () => {
  assert.equal(safeFileName('../../etc/passwd'), 'etc-passwd');
  assert.equal(safeFileName('..'), 'export');
  assert.equal(exportMessage('csv', 'a/b.csv', 'x').name, 'a-b.csv');
  assert.equal(exportMessage('png', 'x.png', 'AAAA').type, 'export');
});

test('serializeSvg: standalone SVG with namespace and a background', () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const u = answerBars(host, { probs: [0.25, 0.25, 0.25, 0.25], gold: 'A' });
  const text = serializeSvg(u.svg()!, { background: '#1e1e1e' });
  assert.match(text, /^<\?xml/);
  assert.match(text, /xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(text, /#1e1e1e/);
  assert.match(text, /data-letter="A"/);
});

test('routing arrays: pack/unpack round trip and JSON-mangled arrays are coerced', () => {
  const r = syntheticRouting(2, 5, 8, 2, { seed: 9 });
  const back = unpackRouting(JSON.parse(JSON.stringify(packRouting(r))));
  assert.deepEqual(Array.from(back.topExperts), Array.from(r.topExperts));
  assert.deepEqual(Array.from(back.topWeights), Array.from(r.topWeights));
  assert.deepEqual(Array.from(back.probs!), Array.from(r.probs!));
  const mangled = JSON.parse(JSON.stringify(r)); // typed arrays become {"0":..}
  const c = coerceRouting(mangled);
  assert.ok(c.topExperts instanceof Uint16Array);
  assert.deepEqual(Array.from(c.entropy), Array.from(r.entropy));
});
