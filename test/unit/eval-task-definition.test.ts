/** tasks.json is workspace input: every field of an evaluation task is checked and named (issue 12). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalTaskDefinitionProblems } from '../../src/host/evalTaskDefinition';

test('a sound definition has no problems; each bad field is named with what was found', () => {
  assert.deepEqual(
    evalTaskDefinitionProblems({
      type: 'moe-scope-eval',
      dataset: 'data/mmlu',
      shots: 5,
      limit: 0,
      tokenScope: 'answer',
      subjects: ['anatomy'],
      model: '/m',
      runDir: 'runs/x',
      split: 'test',
    }),
    [],
  );
  const problems = evalTaskDefinitionProblems({
    type: 'moe-scope-eval',
    dataset: 5,
    shots: 'five',
    limit: -1,
    tokenScope: 'some',
    subjects: 'anatomy',
    model: {},
    runDir: '',
    split: null,
  });
  assert.deepEqual(problems, [
    'field "dataset" must be a non-empty string, found 5',
    'field "split" must be a non-empty string, found null',
    'field "model" must be a non-empty string, found {}',
    'field "runDir" must be a non-empty string, found ""',
    'field "shots" must be an integer from 0 to 5, found "five"',
    'field "limit" must be a non-negative integer, found -1',
    'field "tokenScope" must be "all", "question" or "answer", found "some"',
    'field "subjects" must be a list of subject names, found "anatomy"',
  ]);
  assert.deepEqual(evalTaskDefinitionProblems({ type: 'moe-scope-eval' }), ['field "dataset" must be a non-empty string, found nothing']);
});
