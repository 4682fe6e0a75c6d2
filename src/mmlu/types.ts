/** An MMLU question as every reader returns it, whatever the file format. */
export interface MmluQuestion {
  /** Stable id: `${subject}/${split}/${indexWithinSubjectAndSplit}`. */
  id: string;
  /** Subject key as in the original file names, e.g. "high_school_biology". */
  subject: string;
  /** "dev" | "val" | "test" | another split name found in the data. */
  split: string;
  question: string;
  choices: [string, string, string, string];
  /** Gold answer index 0-3, or null when the source has none. */
  answer: 0 | 1 | 2 | 3 | null;
  /** Where it came from, for messages and "reveal in editor". line is 1-based. */
  source: { file: string; line: number };
}

/** A row that could not be read. Reported, skipped, never guessed at. */
export interface ParseIssue {
  file: string;
  line: number;
  reason: string;
}

export interface MmluDataset {
  /** What was opened: a folder, a CSV, a JSONL or a Parquet file. */
  path: string;
  format: 'mmlu-tree' | 'mmlu-csv' | 'jsonl' | 'parquet';
  questions: MmluQuestion[];
  issues: ParseIssue[];
  /** sha256 over the files' bytes in a stable order; names a dataset in run manifests. */
  fingerprint: string;
  /**
   * Rows that were read although they bend the format (e.g. a quote inside an unquoted CSV field, kept as
   * a character); `reason` says how each was read. Unlike `issues`, these rows are in `questions`.
   */
  warnings?: ParseIssue[];
  /** The files read, relative to `path` (a file's own name when a single file was opened), sorted. */
  files?: string[];
  /** subject -> subcategories and category, from a categories.json found with the data. */
  categories?: Record<string, MmluSubjectCategory>;
}

/** Where a subject sits in MMLU's grouping: 57 subjects, 17 subcategories, 4 categories. */
export interface MmluSubjectCategory {
  subcategories: string[];
  category: string;
}
