import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setupDom } from '../support/domEnv';
import { syntheticTrace } from '../support/synthetic';
import { routingMap } from '../../webview/charts/routingMap';
import { visibleToken } from '../../webview/common/dom';

const env = setupDom();

test('routingMap: one layer label per layer and one token header per token, with the token texts', () => {
  const p = syntheticTrace({ numTokens: 40, numLayers: 16 });
  const host = env.document.createElement('div');
  env.app.append(host);
  const tokens = p.result.tokens.map((t) => t.text);
  routingMap(host, { routing: p.result.routing, tokens }, {});
  const labels = host.querySelectorAll('[data-testid="layer-label"]');
  assert.equal(labels.length, 16);
  assert.deepEqual(
    Array.from(labels, (l) => l.textContent),
    Array.from({ length: 16 }, (_, i) => `L${i}`),
  );
  const heads = host.querySelectorAll('[data-testid="token"]');
  assert.equal(heads.length, 40);
  assert.deepEqual(
    Array.from(heads, (h) => h.textContent),
    tokens.map(visibleToken),
  );
  assert.ok(host.querySelector('canvas.rm-tile'), 'cells are drawn on canvas tiles');
  assert.equal(host.querySelectorAll('canvas.rm-tile').length, 1);
});

test('routingMap: whitespace is made visible in token headers', () => {
  assert.equal(visibleToken(' the'), '·the');
  assert.equal(visibleToken('\n'), '⏎');
  assert.equal(visibleToken('\t'), '→');
  assert.equal(visibleToken(''), '∅');
  const host = env.document.createElement('div');
  env.app.append(host);
  const routing = {
    numLayers: 2,
    numTokens: 3,
    numExperts: 4,
    topK: 2,
    topExperts: new Uint16Array(12),
    topWeights: new Float32Array(12).fill(0.5),
    entropy: new Float32Array(6),
  };
  routingMap(host, { routing, tokens: [' A', '\n', 'x y'] });
  assert.deepEqual(
    Array.from(host.querySelectorAll('[data-testid="token"]'), (t) => t.textContent),
    ['·A', '⏎', 'x·y'],
  );
});

test('routingMap: update() rebuilds headers for a new trace; highlightToken marks one header', () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const a = syntheticTrace({ numTokens: 30 });
  const b = syntheticTrace({ numTokens: 55, numLayers: 4, seed: 3 });
  const u = routingMap(host, { routing: a.result.routing, tokens: a.result.tokens.map((t) => t.text) });
  u.highlightToken(5);
  assert.equal(host.querySelectorAll('.rm-token.is-highlighted').length, 1);
  assert.equal(host.querySelector('.rm-token.is-highlighted')?.getAttribute('data-index'), '5');
  u({ routing: b.result.routing, tokens: b.result.tokens.map((t) => t.text) });
  assert.equal(host.querySelectorAll('[data-testid="token"]').length, 55);
  assert.equal(host.querySelectorAll('[data-testid="layer-label"]').length, 4);
  u.highlightToken(null);
  assert.equal(host.querySelectorAll('.rm-token.is-highlighted').length, 0);
});

test('routingMap: header click and Enter call back with the token index', () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const p = syntheticTrace({ numTokens: 10 });
  const activated: number[] = [];
  routingMap(host, { routing: p.result.routing, tokens: p.result.tokens.map((t) => t.text) }, { onTokenActivate: (t) => activated.push(t) });
  const third = host.querySelectorAll('[data-testid="token"]')[3]!;
  third.dispatchEvent(new env.window.Event('click', { bubbles: true }));
  assert.deepEqual(activated, [3]);
});
