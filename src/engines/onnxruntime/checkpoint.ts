/**
 * A Hugging Face checkpoint folder: config.json, one or more *.safetensors (sharded through
 * model.safetensors.index.json) and tokenizer.json. Opening validates everything the graph needs —
 * presence, dtype and shape of every tensor — so that problems surface as one clear message before
 * any graph is built.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../../shared/inputError';
import { readJson, parseJsonText } from '../../shared/readJson';
import { readRegularText } from '../../shared/safeFiles';
import { SafetensorsFile, SafetensorsError, type SafetensorsTensorInfo } from './formats/safetensors';
import { FLOAT_DTYPES, toFloat32 } from './formats/dtypes';
import { moeLayersOf } from './familyFeatures';
import { familyFor, ConfigError, type FamilyDescriptor, type MoeArchitecture, type TensorNames, type HfConfig } from './families';

export class CheckpointError extends InputError {}

export interface LocatedTensor extends SafetensorsTensorInfo {
  file: string;
}

export type ExpertLayout = 'per-expert' | 'packed' | 'stacked-rows';

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: HfConfig,
    readonly configText: string,
    readonly family: FamilyDescriptor,
    readonly arch: MoeArchitecture,
    readonly names: TensorNames,
    readonly files: SafetensorsFile[],
    private readonly index: Map<string, { file: SafetensorsFile; info: SafetensorsTensorInfo }>,
    readonly expertLayout: ExpertLayout,
  ) {}

  static open(dir: string): Checkpoint {
    const absDir = path.resolve(dir);
    if (!fs.existsSync(absDir) || !fs.statSync(absDir).isDirectory()) {
      throw new CheckpointError(absDir, `not a folder. Point MoE Scope at a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json).`);
    }
    const configFile = path.join(absDir, 'config.json');
    if (!fs.existsSync(configFile)) {
      throw new CheckpointError(absDir, `no config.json. A Hugging Face checkpoint folder holds config.json, *.safetensors and tokenizer.json.`);
    }
    requireRegularFile(configFile);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json']) {
      if (fs.existsSync(path.join(absDir, f))) requireRegularFile(path.join(absDir, f));
    }
    const configText = readRegularText(configFile, { maxBytes: 16 << 20, error: CheckpointError });
    const parsed = parseJsonText(configText, configFile, CheckpointError);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new CheckpointError(
        configFile,
        `the top level must be a JSON object, not ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed}`,
      );
    const config = parsed as HfConfig;
    let family: FamilyDescriptor;
    let arch: MoeArchitecture;
    try {
      family = familyFor(config, configFile);
      arch = family.architecture(config, configFile);
    } catch (e) {
      if (e instanceof ConfigError) throw new CheckpointError(e.file, InputError.splitMessage(e.file, e.message));
      throw e;
    }
    const files = openSafetensors(absDir);
    const index = new Map<string, { file: SafetensorsFile; info: SafetensorsTensorInfo }>();
    for (const f of files) {
      for (const [name, info] of f.tensors) {
        const other = index.get(name);
        if (other)
          throw new CheckpointError(f.file, `tensor "${name}" is in two files, ${other.file.file} and ${f.file}; a checkpoint must hold each tensor once`);
        index.set(name, { file: f, info });
      }
    }
    checkCountsAgainstTensors(configFile, arch, index);
    const names = family.tensorNames(arch);
    const layout = detectExpertLayout(absDir, index, names, arch);
    const ckpt = new Checkpoint(absDir, config, configText, family, arch, names, files, index, layout);
    ckpt.validate();
    return ckpt;
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  tensor(name: string): LocatedTensor {
    const hit = this.index.get(name);
    if (!hit) throw new CheckpointError(this.dir, `tensor "${name}" is missing from the checkpoint's safetensors files`);
    return { ...hit.info, file: hit.file.file };
  }

  readFloat32(name: string): Float32Array {
    const hit = this.index.get(name);
    if (!hit) throw new CheckpointError(this.dir, `tensor "${name}" is missing from the checkpoint's safetensors files`);
    return hit.file.readFloat32(name);
  }

  /** One expert's [out, in] matrices as float32, whichever layout the checkpoint uses. */
  readExpert(layer: number, expert: number): { gate: Float32Array; up: Float32Array; down: Float32Array } {
    const { hiddenSize: h, expertIntermediate: inter } = this.arch;
    const ln = this.names.layer(layer);
    if (this.expertLayout === 'per-expert') {
      const n = ln.expert(expert);
      return { gate: this.readFloat32(n.gate), up: this.readFloat32(n.up), down: this.readFloat32(n.down) };
    }
    if (this.expertLayout === 'stacked-rows') {
      const rows = ln.stackedRows!;
      // w2 holds each expert's down projection transposed: [inter, hidden] rows.
      const downT = this.readSlice(rows.down, expert, inter * h);
      const down = new Float32Array(h * inter);
      for (let i = 0; i < inter; i++) for (let j = 0; j < h; j++) down[j * inter + i] = downT[i * h + j];
      return { gate: this.readSlice(rows.gate, expert, inter * h), up: this.readSlice(rows.up, expert, inter * h), down };
    }
    const packed = ln.packed!;
    const gateUp = this.readSlice(packed.gateUp, expert, 2 * inter * h);
    return {
      gate: gateUp.subarray(0, inter * h),
      up: gateUp.subarray(inter * h),
      down: this.readSlice(packed.down, expert, h * inter),
    };
  }

  /**
   * One expert's [out, in] matrices as bfloat16 bit patterns, when the checkpoint stores each as its own
   * bf16 tensor (the quantised build decodes them on its workers); null for other layouts and dtypes.
   */
  readExpertBf16(layer: number, expert: number): { gate: Uint16Array; up: Uint16Array; down: Uint16Array } | null {
    if (this.expertLayout !== 'per-expert') return null;
    const n = this.names.layer(layer).expert(expert);
    const hits = [n.gate, n.up, n.down].map((name) => this.index.get(name));
    if (hits.some((h) => !h || h.info.dtype !== 'BF16')) return null;
    const [gate, up, down] = [n.gate, n.up, n.down].map((name, i) => {
      const bytes = hits[i]!.file.readBytes(name);
      return bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer);
    });
    return { gate, up, down };
  }

  /** Reads the `index`-th slice of `length` elements along the first axis, without reading the rest. */
  private readSlice(name: string, index: number, length: number): Float32Array {
    const hit = this.index.get(name)!;
    const elemBytes = hit.info.byteLength / hit.info.shape.reduce((a, b) => a * b, 1);
    const fd = fs.openSync(hit.file.file, 'r');
    try {
      const buf = Buffer.alloc(length * elemBytes);
      fs.readSync(fd, buf, 0, buf.length, hit.info.fileOffset + index * length * elemBytes);
      return toFloat32(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), hit.info.dtype);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Every tensor the architecture needs, with its expected shape. */
  expectedTensors(): { name: string; shape: number[] }[] {
    const a = this.arch;
    const qDim = a.numHeads * a.headDim;
    const kvDim = a.numKvHeads * a.headDim;
    const out: { name: string; shape: number[] }[] = [
      { name: this.names.embed, shape: [a.vocabSize, a.hiddenSize] },
      { name: this.names.finalNorm, shape: [a.hiddenSize] },
    ];
    if (!a.tieWordEmbeddings) out.push({ name: this.names.lmHead, shape: [a.vocabSize, a.hiddenSize] });
    const moe = new Set(moeLayersOf(a));
    const H = a.hiddenSize;
    for (let l = 0; l < a.numLayers; l++) {
      const n = this.names.layer(l);
      out.push({ name: a.postNorm ? n.postFeedforwardNorm! : n.inputNorm, shape: [H] }, { name: n.postAttentionNorm, shape: [H] });
      if (a.mla && n.mla) {
        const m = a.mla;
        const qk = m.nopeDim + m.ropeDim;
        if (m.qLoraRank === null) out.push({ name: n.mla.q!, shape: [a.numHeads * qk, H] });
        else
          out.push(
            { name: n.mla.qA!, shape: [m.qLoraRank, H] },
            { name: n.mla.qANorm!, shape: [m.qLoraRank] },
            { name: n.mla.qB!, shape: [a.numHeads * qk, m.qLoraRank] },
          );
        out.push(
          { name: n.mla.kvA, shape: [m.kvLoraRank + m.ropeDim, H] },
          { name: n.mla.kvANorm, shape: [m.kvLoraRank] },
          { name: n.mla.kvB, shape: [a.numHeads * (m.nopeDim + m.valueDim), m.kvLoraRank] },
          { name: n.o, shape: [H, a.numHeads * m.valueDim] },
        );
      } else if (n.qkvFused) {
        out.push({ name: n.qkvFused, shape: [qDim + 2 * kvDim, H] }, { name: n.o, shape: [H, qDim] });
      } else {
        out.push({ name: n.q, shape: [qDim, H] }, { name: n.k, shape: [kvDim, H] }, { name: n.v, shape: [kvDim, H] }, { name: n.o, shape: [H, qDim] });
      }
      if (a.qkNorm === 'full') out.push({ name: n.qNorm!, shape: [qDim] }, { name: n.kNorm!, shape: [kvDim] });
      if (a.qkNorm === 'per-head') out.push({ name: n.qNorm!, shape: [a.headDim] }, { name: n.kNorm!, shape: [a.headDim] });
      if (n.qkvBias) out.push({ name: n.qkvBias.q, shape: [qDim] }, { name: n.qkvBias.k, shape: [kvDim] }, { name: n.qkvBias.v, shape: [kvDim] });
      if (!moe.has(l)) {
        const d = a.denseIntermediate!;
        out.push({ name: n.denseMlp!.gate, shape: [d, H] }, { name: n.denseMlp!.up, shape: [d, H] }, { name: n.denseMlp!.down, shape: [H, d] });
        continue;
      }
      out.push({ name: n.router, shape: [a.numExperts, H] });
      if (n.routerChoiceBias) out.push({ name: n.routerChoiceBias, shape: a.router?.choiceBiasAsRow ? [1, a.numExperts] : [a.numExperts] });
      if (this.expertLayout === 'per-expert') {
        for (let e = 0; e < a.numExperts; e++) {
          const x = n.expert(e);
          out.push(
            { name: x.gate, shape: [a.expertIntermediate, H] },
            { name: x.up, shape: [a.expertIntermediate, H] },
            { name: x.down, shape: [H, a.expertIntermediate] },
          );
        }
      } else if (this.expertLayout === 'stacked-rows') {
        const rows = a.numExperts * a.expertIntermediate;
        out.push(
          { name: n.stackedRows!.gate, shape: [rows, H] },
          { name: n.stackedRows!.up, shape: [rows, H] },
          { name: n.stackedRows!.down, shape: [rows, H] },
        );
      } else {
        out.push(
          { name: n.packed!.gateUp, shape: [a.numExperts, 2 * a.expertIntermediate, H] },
          { name: n.packed!.down, shape: [a.numExperts, H, a.expertIntermediate] },
        );
      }
      if (n.sharedFused && a.sharedExpert) {
        const si = a.sharedExpert.intermediate;
        out.push({ name: n.sharedFused.gateUp, shape: [2 * si, H] }, { name: n.sharedFused.down, shape: [H, si] });
      }
      if (n.shared && a.sharedExpert) {
        const si = a.sharedExpert.intermediate;
        out.push({ name: n.shared.gate, shape: [si, H] }, { name: n.shared.up, shape: [si, H] }, { name: n.shared.down, shape: [H, si] });
        if (n.shared.gateScale) out.push({ name: n.shared.gateScale, shape: [1, H] });
      }
    }
    return out;
  }

  private validate(): void {
    for (const { name, shape } of this.expectedTensors()) {
      const hit = this.index.get(name);
      if (!hit) {
        throw new CheckpointError(
          this.dir,
          `tensor "${name}" is missing (expected shape [${shape.join(', ')}] for ${this.arch.modelType}); the checkpoint is incomplete or of another architecture`,
        );
      }
      if (!FLOAT_DTYPES.includes(hit.info.dtype)) {
        throw new CheckpointError(hit.file.file, `tensor "${name}" has dtype ${hit.info.dtype}; expected F32, F16 or BF16`);
      }
      if (hit.info.shape.length !== shape.length || hit.info.shape.some((d, i) => d !== shape[i])) {
        throw new CheckpointError(hit.file.file, `tensor "${name}" has shape [${hit.info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`);
      }
    }
  }

  /** Dtype of the bulk of the weights (what a "bf16 checkpoint" means). */
  storageDType(): string {
    const counts = new Map<string, number>();
    for (const f of this.files) for (const t of f.tensors.values()) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + t.byteLength);
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  }
}

/**
 * A FIFO or device named like a checkpoint file would block the load forever (or read without end):
 * only regular files (symlinks to them included, as in Hugging Face hub snapshots) are read.
 */
function requireRegularFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!st.isFile()) {
    const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a folder' : st.isSocket() ? 'a socket' : 'a device or other special file';
    throw new CheckpointError(file, `not a regular file (${kind}); a checkpoint folder holds ordinary files`);
  }
}

/**
 * The counts config.json declares (layers, experts, hidden size, vocabulary) against what the tensors
 * hold, from names and the embedding's shape alone: nothing is allocated per layer or expert before
 * this passes, so "num_hidden_layers": 1e9 fails at once instead of exhausting memory, and a config
 * with 2 layers is not run on a 16-layer checkpoint's first 2.
 */
function checkCountsAgainstTensors(
  configFile: string,
  arch: MoeArchitecture,
  index: Map<string, { file: SafetensorsFile; info: SafetensorsTensorInfo }>,
): void {
  let maxLayer = -1;
  let maxExpert = -1;
  let packedExperts = -1;
  let embed: SafetensorsTensorInfo | null = null;
  // Not moeLayersOf(arch): that lists every layer, and num_hidden_layers is not yet checked against the tensors.
  const firstMoe = arch.moeLayers ? arch.moeLayers[0] : 0;
  for (const [name, { info }] of index) {
    const layer = /(?:^|\.)(?:layers|blocks)\.(\d+)\./.exec(name);
    if (layer) maxLayer = Math.max(maxLayer, Number(layer[1]));
    if (layer && Number(layer[1]) === firstMoe) {
      const expert = /\.experts\.(\d+)\./.exec(name);
      if (expert) maxExpert = Math.max(maxExpert, Number(expert[1]));
      else if (/\.experts\.[^.]*gate_up/.test(name)) packedExperts = info.shape[0] ?? -1;
    }
    if (/(^|\.)embed_tokens\.weight$/.test(name)) embed = info;
  }
  const declared = (field: string, value: number, found: number, what: string) => {
    if (found >= 0 && value !== found)
      throw new CheckpointError(
        configFile,
        `${field} is ${value} but the safetensors files hold ${found} ${what}; config.json and weights do not belong together`,
      );
  };
  declared('num_hidden_layers', arch.numLayers, maxLayer + 1, 'layers');
  declared('the number of experts', arch.numExperts, maxExpert >= 0 ? maxExpert + 1 : packedExperts, `experts in layer ${firstMoe}`);
  if (embed && embed.shape.length === 2) {
    declared('vocab_size', arch.vocabSize, embed.shape[0], 'embedding rows');
    declared('hidden_size', arch.hiddenSize, embed.shape[1], 'embedding columns');
  }
}

function openSafetensors(dir: string): SafetensorsFile[] {
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  const wrap = (f: string) => {
    try {
      return SafetensorsFile.open(f);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CheckpointError(e.file, InputError.splitMessage(e.file, e.message));
      throw e;
    }
  };
  if (fs.existsSync(indexFile)) {
    const index = (readJson(indexFile, { error: CheckpointError }) ?? {}) as { weight_map?: Record<string, string> };
    if (typeof index !== 'object' || !index.weight_map || typeof index.weight_map !== 'object' || Array.isArray(index.weight_map))
      throw new CheckpointError(indexFile, `no "weight_map" object`);
    const shardNames = [...new Set(Object.values(index.weight_map))].sort();
    const shards = shardNames.map((s) => {
      const f = path.join(dir, s);
      if (path.relative(dir, f).startsWith('..')) throw new CheckpointError(indexFile, `shard "${s}" lies outside the checkpoint folder`);
      if (!fs.existsSync(f)) throw new CheckpointError(indexFile, `shard "${s}" listed in weight_map does not exist`);
      requireRegularFile(f);
      return wrap(f);
    });
    for (const [tensor, shard] of Object.entries(index.weight_map)) {
      const f = shards[shardNames.indexOf(shard)];
      if (!f.tensors.has(tensor)) throw new CheckpointError(f.file, `tensor "${tensor}" is listed in model.safetensors.index.json but not in this shard`);
    }
    return shards;
  }
  const single = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  if (single.length === 0)
    throw new CheckpointError(dir, `no *.safetensors file (and no model.safetensors.index.json). MoE Scope reads Hugging Face safetensors checkpoints.`);
  return single.map((f) => {
    requireRegularFile(path.join(dir, f));
    return wrap(path.join(dir, f));
  });
}

function detectExpertLayout(dir: string, index: Map<string, unknown>, names: TensorNames, arch: MoeArchitecture): ExpertLayout {
  const first = moeLayersOf(arch)[0];
  const l0 = names.layer(first);
  if (index.has(l0.expert(0).gate)) return 'per-expert';
  if (l0.packed && index.has(l0.packed.gateUp)) return 'packed';
  if (l0.stackedRows && index.has(l0.stackedRows.gate)) return 'stacked-rows';
  throw new CheckpointError(
    dir,
    `no expert weights found for layer ${first}: expected "${l0.expert(0).gate}"${l0.packed ? ` or the packed "${l0.packed.gateUp}"` : ''}`,
  );
}
