import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CategoriesError, MMLU_CATEGORIES, MMLU_CATEGORY_NAMES, categoryOf, parseCategories } from '../../src/mmlu/categories';

import { mmluDir } from '../support/mmlu';

test('the embedded mapping equals the release categories.json', () => {
  const file = join(mmluDir(), 'categories.json');
  const parsed = parseCategories(readFileSync(file, 'utf8'), file);
  assert.deepEqual({ ...MMLU_CATEGORIES }, parsed);
  assert.equal(Object.keys(parsed).length, 57);
  assert.equal(new Set(Object.values(parsed).flatMap((c) => c.subcategories)).size, 17);
  assert.deepEqual(new Set(Object.values(parsed).map((c) => c.category)), new Set(MMLU_CATEGORY_NAMES));
});

test('known subjects land in the categories of the MMLU paper', () => {
  assert.equal(categoryOf('abstract_algebra'), 'STEM');
  assert.equal(categoryOf('high_school_european_history'), 'humanities');
  assert.equal(categoryOf('econometrics'), 'social sciences');
  assert.equal(categoryOf('clinical_knowledge'), 'other (business, health, misc.)');
  assert.equal(categoryOf('not_a_subject'), null);
  assert.equal(categoryOf('toString'), null);
});

test('a hand-written mapping, and the errors name file and line', () => {
  const ok = parseCategories('{"subcategories": {"s1": ["x"], "s2": ["y"]}, "categories": {"C1": ["x"], "C2": ["y"]}}', 'c.json');
  assert.deepEqual(ok, { s1: { subcategories: ['x'], category: 'C1' }, s2: { subcategories: ['y'], category: 'C2' } });

  const bad = (text: string) => {
    try {
      parseCategories(text, 'c.json');
    } catch (e) {
      assert.ok(e instanceof CategoriesError);
      return [e.file, e.line, e.reason];
    }
    assert.fail('expected an error');
  };
  const [f, line, reason] = bad('{\n  "subcategories": {,\n}');
  assert.deepEqual([f, line], ['c.json', 2]);
  assert.match(String(reason), /^invalid JSON/);
  assert.deepEqual(bad('[]'), ['c.json', 1, 'expected an object with "subcategories" and "categories" objects']);
  assert.deepEqual(bad('{"subcategories": {},\n"categories": {\n"A": ["x"],\n"B": ["x"]}}'), ['c.json', 4, 'subcategory "x" is listed under both "A" and "B"']);
  assert.deepEqual(bad('{"subcategories": {\n"s": ["x", "y"]},\n"categories": {"A": ["x"], "B": ["y"]}}'), [
    'c.json',
    2,
    'subject "s" falls into several categories: A, B',
  ]);
  assert.deepEqual(bad('{"subcategories": {\n"s": []}, "categories": {}}'), ['c.json', 2, 'subject "s" must list at least one subcategory']);
});
