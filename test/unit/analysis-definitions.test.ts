/** The summary's Definitions give the token scope's long definition once (issue 24, item 12). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analysisDefinitions, compactDefinitions, scopeReference } from '../../src/analysis/definitions';
import { tokenScopeDefinition } from '../../src/analysis/scope';
import { TOKEN_SCOPES } from '../../src/shared/protocol';

const count = (hay: string, needle: string) => hay.split(needle).length - 1;

test('the full token-scope definition appears once; scope-dependent definitions name the scope briefly', () => {
  for (const scope of TOKEN_SCOPES) {
    const defs = analysisDefinitions({ scope, numLayers: 16, numExperts: 64, topK: 8, entropyBins: 100 });
    const all = Object.values(defs).join('\n');
    assert.equal(count(all, tokenScopeDefinition(scope)), 1, scope);
    assert.ok(defs.tokenScope!.includes(tokenScopeDefinition(scope)));
    assert.ok(count(all, scopeReference(scope)) >= 8, `${scope}: the short reference stands in the scope-dependent definitions`);
  }
});

test('a summary written with the repeated clause is shown with it once', () => {
  const scope = 'answer';
  const long = `counting ${tokenScopeDefinition(scope)}`;
  const old = {
    tokenScope: `Token scope: ${tokenScopeDefinition(scope)}.`,
    neverActivated: `Per layer: experts with zero assignments, ${long}.`,
    questions: 'n',
  };
  const shown = compactDefinitions(old, scope);
  assert.equal(shown.neverActivated, `Per layer: experts with zero assignments, ${scopeReference(scope)}.`);
  assert.equal(shown.tokenScope, old.tokenScope);
  assert.equal(shown.questions, 'n');
});
