/**
 * MMLU's grouping of subjects, as in the release's categories.json:
 * { "subcategories": { subject: [subcategory, ...] }, "categories": { category: [subcategory, ...] } }.
 * Read into subject -> { subcategories, category }.
 *
 * An embedded copy of the original mapping keeps per-category results available when the data folder
 * carries no categories.json (Hugging Face exports never do).
 */
import { InputError } from '../shared/inputError';
import type { MmluSubjectCategory } from './types';

export class CategoriesError extends InputError {
  constructor(
    file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(file, reason, line);
  }
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Line of the first occurrence of a JSON key, for messages about that key; 1 when not found. */
function lineOfKey(text: string, key: string): number {
  const at = text.indexOf(JSON.stringify(key));
  return at < 0 ? 1 : lineAt(text, at);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses categories.json. Throws CategoriesError (file, line, reason) for bad JSON, a wrong shape, a
 * subcategory no category lists, or a subject whose subcategories fall into different categories.
 */
export function parseCategories(text: string, file: string): Record<string, MmluSubjectCategory> {
  let json: unknown;
  try {
    json = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    const message = (e as Error).message;
    const pos = /position (\d+)/.exec(message);
    throw new CategoriesError(file, pos ? lineAt(text, Number(pos[1])) : 1, `invalid JSON: ${message}`);
  }
  if (!isObject(json) || !isObject(json.subcategories) || !isObject(json.categories)) {
    throw new CategoriesError(file, 1, 'expected an object with "subcategories" and "categories" objects');
  }
  const categoryOfSub = new Map<string, string>();
  for (const [category, subs] of Object.entries(json.categories)) {
    if (!isStringArray(subs)) throw new CategoriesError(file, lineOfKey(text, category), `category "${category}" must list subcategory names`);
    for (const sub of subs) {
      const before = categoryOfSub.get(sub);
      if (before !== undefined && before !== category) {
        throw new CategoriesError(file, lineOfKey(text, category), `subcategory "${sub}" is listed under both "${before}" and "${category}"`);
      }
      categoryOfSub.set(sub, category);
    }
  }
  const out: Record<string, MmluSubjectCategory> = {};
  for (const [subject, subs] of Object.entries(json.subcategories)) {
    const line = lineOfKey(text, subject);
    if (!isStringArray(subs) || subs.length === 0) throw new CategoriesError(file, line, `subject "${subject}" must list at least one subcategory`);
    const cats = new Set<string>();
    for (const sub of subs) {
      const c = categoryOfSub.get(sub);
      if (c === undefined) throw new CategoriesError(file, line, `subcategory "${sub}" of "${subject}" belongs to no category`);
      cats.add(c);
    }
    if (cats.size > 1) throw new CategoriesError(file, line, `subject "${subject}" falls into several categories: ${[...cats].join(', ')}`);
    Object.defineProperty(out, subject, { value: { subcategories: [...subs], category: [...cats][0] }, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The four categories in the order of the original release. */
export const MMLU_CATEGORY_NAMES: readonly string[] = ['STEM', 'humanities', 'social sciences', 'other (business, health, misc.)'];

export function categoryOf(subject: string, table: Record<string, MmluSubjectCategory> = MMLU_CATEGORIES): string | null {
  return Object.prototype.hasOwnProperty.call(table, subject) ? table[subject].category : null;
}

/*
 * Generated once from categories.json of the MMLU release (sha256 1522446887...5c609c).
 * MMLU: Copyright (c) 2020 Dan Hendrycks, MIT License (https://github.com/hendrycks/test).
 */
export const MMLU_CATEGORIES: Readonly<Record<string, MmluSubjectCategory>> = {
  abstract_algebra: { subcategories: ['math'], category: 'STEM' },
  anatomy: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  astronomy: { subcategories: ['physics'], category: 'STEM' },
  business_ethics: { subcategories: ['business'], category: 'other (business, health, misc.)' },
  clinical_knowledge: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  college_biology: { subcategories: ['biology'], category: 'STEM' },
  college_chemistry: { subcategories: ['chemistry'], category: 'STEM' },
  college_computer_science: { subcategories: ['computer science'], category: 'STEM' },
  college_mathematics: { subcategories: ['math'], category: 'STEM' },
  college_medicine: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  college_physics: { subcategories: ['physics'], category: 'STEM' },
  computer_security: { subcategories: ['computer science'], category: 'STEM' },
  conceptual_physics: { subcategories: ['physics'], category: 'STEM' },
  econometrics: { subcategories: ['economics'], category: 'social sciences' },
  electrical_engineering: { subcategories: ['engineering'], category: 'STEM' },
  elementary_mathematics: { subcategories: ['math'], category: 'STEM' },
  formal_logic: { subcategories: ['philosophy'], category: 'humanities' },
  global_facts: { subcategories: ['other'], category: 'other (business, health, misc.)' },
  high_school_biology: { subcategories: ['biology'], category: 'STEM' },
  high_school_chemistry: { subcategories: ['chemistry'], category: 'STEM' },
  high_school_computer_science: { subcategories: ['computer science'], category: 'STEM' },
  high_school_european_history: { subcategories: ['history'], category: 'humanities' },
  high_school_geography: { subcategories: ['geography'], category: 'social sciences' },
  high_school_government_and_politics: { subcategories: ['politics'], category: 'social sciences' },
  high_school_macroeconomics: { subcategories: ['economics'], category: 'social sciences' },
  high_school_mathematics: { subcategories: ['math'], category: 'STEM' },
  high_school_microeconomics: { subcategories: ['economics'], category: 'social sciences' },
  high_school_physics: { subcategories: ['physics'], category: 'STEM' },
  high_school_psychology: { subcategories: ['psychology'], category: 'social sciences' },
  high_school_statistics: { subcategories: ['math'], category: 'STEM' },
  high_school_us_history: { subcategories: ['history'], category: 'humanities' },
  high_school_world_history: { subcategories: ['history'], category: 'humanities' },
  human_aging: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  human_sexuality: { subcategories: ['culture'], category: 'social sciences' },
  international_law: { subcategories: ['law'], category: 'humanities' },
  jurisprudence: { subcategories: ['law'], category: 'humanities' },
  logical_fallacies: { subcategories: ['philosophy'], category: 'humanities' },
  machine_learning: { subcategories: ['computer science'], category: 'STEM' },
  management: { subcategories: ['business'], category: 'other (business, health, misc.)' },
  marketing: { subcategories: ['business'], category: 'other (business, health, misc.)' },
  medical_genetics: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  miscellaneous: { subcategories: ['other'], category: 'other (business, health, misc.)' },
  moral_disputes: { subcategories: ['philosophy'], category: 'humanities' },
  moral_scenarios: { subcategories: ['philosophy'], category: 'humanities' },
  nutrition: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  philosophy: { subcategories: ['philosophy'], category: 'humanities' },
  prehistory: { subcategories: ['history'], category: 'humanities' },
  professional_accounting: { subcategories: ['other'], category: 'other (business, health, misc.)' },
  professional_law: { subcategories: ['law'], category: 'humanities' },
  professional_medicine: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  professional_psychology: { subcategories: ['psychology'], category: 'social sciences' },
  public_relations: { subcategories: ['politics'], category: 'social sciences' },
  security_studies: { subcategories: ['politics'], category: 'social sciences' },
  sociology: { subcategories: ['culture'], category: 'social sciences' },
  us_foreign_policy: { subcategories: ['politics'], category: 'social sciences' },
  virology: { subcategories: ['health'], category: 'other (business, health, misc.)' },
  world_religions: { subcategories: ['philosophy'], category: 'humanities' },
};
