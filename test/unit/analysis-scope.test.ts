import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKEN_SCOPES, TOKEN_SCOPE_LABELS } from '../../src/shared/protocol';
import { checkScopePositions, scopeRange, tokenScopeDefinition, tokensInScope } from '../../src/analysis/scope';

// A 7-token prompt: header 0-1, question and choices 2-4, "Answer" 5, ":" 6 (the answer position).
const prompt = { numTokens: 7, questionTokens: [2, 5] as [number, number], answerToken: 6 };

test('tokensInScope: all tokens, the question range, the answer position', () => {
  assert.deepEqual(tokensInScope(prompt, 'all'), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(tokensInScope(prompt, 'question'), [2, 3, 4]);
  assert.deepEqual(tokensInScope(prompt, 'answer'), [6]);
  assert.deepEqual(scopeRange(prompt, 'question'), [2, 5]);
  assert.deepEqual(scopeRange(prompt, 'answer'), [6, 7]);
});

test('tokensInScope: an empty question range is allowed and yields no tokens', () => {
  assert.deepEqual(tokensInScope({ ...prompt, questionTokens: [3, 3] }, 'question'), []);
});

test('scope positions outside the prompt are rejected', () => {
  assert.throws(() => checkScopePositions({ ...prompt, answerToken: 7 }), /answerToken 7/);
  assert.throws(() => checkScopePositions({ ...prompt, answerToken: -1 }), /answerToken/);
  assert.throws(() => checkScopePositions({ ...prompt, questionTokens: [4, 2] }), /questionTokens/);
  assert.throws(() => checkScopePositions({ ...prompt, questionTokens: [2, 8] }), /questionTokens/);
  assert.throws(() => checkScopePositions({ ...prompt, numTokens: 0 }), /numTokens/);
  assert.throws(() => tokensInScope({ ...prompt, questionTokens: [0.5, 2] }, 'all'), /questionTokens/);
});

test('every scope has a definition that starts with its UI label', () => {
  for (const scope of TOKEN_SCOPES) {
    const d = tokenScopeDefinition(scope);
    assert.ok(d.startsWith(`${TOKEN_SCOPE_LABELS[scope]}: `), d);
    assert.ok(d.length > TOKEN_SCOPE_LABELS[scope].length + 20, d);
  }
});
