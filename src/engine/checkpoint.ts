/**
 * A Hugging Face checkpoint folder: config.json, one or more *.safetensors (sharded through
 * model.safetensors.index.json) and tokenizer.json. Opening validates everything the graph needs —
 * presence, dtype and shape of every tensor — so that problems surface as one clear message before
 * any graph is built.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile, SafetensorsError, type SafetensorsTensorInfo } from './formats/safetensors';
import { FLOAT_DTYPES, toFloat32 } from './formats/dtypes';
import { familyFor, ConfigError, type FamilyDescriptor, type MoeArchitecture, type TensorNames, type HfConfig } from './families';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface LocatedTensor extends SafetensorsTensorInfo {
  file: string;
}

export type ExpertLayout = 'per-expert' | 'packed';

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
      throw new CheckpointError(`${absDir}: not a folder. Point MoE Scope at a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json).`);
    }
    const configFile = path.join(absDir, 'config.json');
    if (!fs.existsSync(configFile)) {
      throw new CheckpointError(`${absDir}: no config.json. A Hugging Face checkpoint folder holds config.json, *.safetensors and tokenizer.json.`);
    }
    const configText = fs.readFileSync(configFile, 'utf8');
    let config: HfConfig;
    try {
      config = JSON.parse(configText) as HfConfig;
    } catch (e) {
      throw new CheckpointError(`${configFile}: not valid JSON (${(e as Error).message})`);
    }
    let family: FamilyDescriptor;
    let arch: MoeArchitecture;
    try {
      family = familyFor(config, configFile);
      arch = family.architecture(config, configFile);
    } catch (e) {
      if (e instanceof ConfigError) throw new CheckpointError(e.message);
      throw e;
    }
    const files = openSafetensors(absDir);
    const index = new Map<string, { file: SafetensorsFile; info: SafetensorsTensorInfo }>();
    for (const f of files) for (const [name, info] of f.tensors) index.set(name, { file: f, info });
    const names = family.tensorNames(arch);
    const layout = detectExpertLayout(absDir, index, names);
    const ckpt = new Checkpoint(absDir, config, configText, family, arch, names, files, index, layout);
    ckpt.validate();
    return ckpt;
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  tensor(name: string): LocatedTensor {
    const hit = this.index.get(name);
    if (!hit) throw new CheckpointError(`${this.dir}: tensor "${name}" is missing from the checkpoint's safetensors files`);
    return { ...hit.info, file: hit.file.file };
  }

  readFloat32(name: string): Float32Array {
    const hit = this.index.get(name);
    if (!hit) throw new CheckpointError(`${this.dir}: tensor "${name}" is missing from the checkpoint's safetensors files`);
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
    const packed = ln.packed!;
    const gateUp = this.readSlice(packed.gateUp, expert, 2 * inter * h);
    return {
      gate: gateUp.subarray(0, inter * h),
      up: gateUp.subarray(inter * h),
      down: this.readSlice(packed.down, expert, h * inter),
    };
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
    for (let l = 0; l < a.numLayers; l++) {
      const n = this.names.layer(l);
      out.push(
        { name: n.inputNorm, shape: [a.hiddenSize] },
        { name: n.postAttentionNorm, shape: [a.hiddenSize] },
        { name: n.q, shape: [qDim, a.hiddenSize] },
        { name: n.k, shape: [kvDim, a.hiddenSize] },
        { name: n.v, shape: [kvDim, a.hiddenSize] },
        { name: n.o, shape: [a.hiddenSize, qDim] },
        { name: n.router, shape: [a.numExperts, a.hiddenSize] },
      );
      if (a.qkNorm === 'full') out.push({ name: n.qNorm!, shape: [qDim] }, { name: n.kNorm!, shape: [kvDim] });
      if (a.qkNorm === 'per-head') out.push({ name: n.qNorm!, shape: [a.headDim] }, { name: n.kNorm!, shape: [a.headDim] });
      if (n.qkvBias) out.push({ name: n.qkvBias.q, shape: [qDim] }, { name: n.qkvBias.k, shape: [kvDim] }, { name: n.qkvBias.v, shape: [kvDim] });
      if (this.expertLayout === 'per-expert') {
        for (let e = 0; e < a.numExperts; e++) {
          const x = n.expert(e);
          out.push(
            { name: x.gate, shape: [a.expertIntermediate, a.hiddenSize] },
            { name: x.up, shape: [a.expertIntermediate, a.hiddenSize] },
            { name: x.down, shape: [a.hiddenSize, a.expertIntermediate] },
          );
        }
      } else {
        out.push(
          { name: n.packed!.gateUp, shape: [a.numExperts, 2 * a.expertIntermediate, a.hiddenSize] },
          { name: n.packed!.down, shape: [a.numExperts, a.hiddenSize, a.expertIntermediate] },
        );
      }
      if (n.shared && a.sharedExpert) {
        const si = a.sharedExpert.intermediate;
        out.push(
          { name: n.shared.gate, shape: [si, a.hiddenSize] },
          { name: n.shared.up, shape: [si, a.hiddenSize] },
          { name: n.shared.down, shape: [a.hiddenSize, si] },
          { name: n.shared.gateScale, shape: [1, a.hiddenSize] },
        );
      }
    }
    return out;
  }

  private validate(): void {
    for (const { name, shape } of this.expectedTensors()) {
      const hit = this.index.get(name);
      if (!hit) {
        throw new CheckpointError(
          `${this.dir}: tensor "${name}" is missing (expected shape [${shape.join(', ')}] for ${this.arch.modelType}); the checkpoint is incomplete or of another architecture`,
        );
      }
      if (!FLOAT_DTYPES.includes(hit.info.dtype)) {
        throw new CheckpointError(`${hit.file.file}: tensor "${name}" has dtype ${hit.info.dtype}; expected F32, F16 or BF16`);
      }
      if (hit.info.shape.length !== shape.length || hit.info.shape.some((d, i) => d !== shape[i])) {
        throw new CheckpointError(
          `${hit.file.file}: tensor "${name}" has shape [${hit.info.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`,
        );
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

function openSafetensors(dir: string): SafetensorsFile[] {
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  const wrap = (f: string) => {
    try {
      return SafetensorsFile.open(f);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
      throw e;
    }
  };
  if (fs.existsSync(indexFile)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new CheckpointError(`${indexFile}: not valid JSON (${(e as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') throw new CheckpointError(`${indexFile}: no "weight_map" object`);
    const shardNames = [...new Set(Object.values(index.weight_map))].sort();
    const shards = shardNames.map((s) => {
      const f = path.join(dir, s);
      if (path.relative(dir, f).startsWith('..')) throw new CheckpointError(`${indexFile}: shard "${s}" lies outside the checkpoint folder`);
      if (!fs.existsSync(f)) throw new CheckpointError(`${indexFile}: shard "${s}" listed in weight_map does not exist`);
      return wrap(f);
    });
    for (const [tensor, shard] of Object.entries(index.weight_map)) {
      const f = shards[shardNames.indexOf(shard)];
      if (!f.tensors.has(tensor)) throw new CheckpointError(`${f.file}: tensor "${tensor}" is listed in model.safetensors.index.json but not in this shard`);
    }
    return shards;
  }
  const single = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (single.length === 0) throw new CheckpointError(`${dir}: no *.safetensors file (and no model.safetensors.index.json). MoE Scope reads Hugging Face safetensors checkpoints.`);
  return single.map((f) => wrap(path.join(dir, f)));
}

function detectExpertLayout(
  dir: string,
  index: Map<string, unknown>,
  names: TensorNames,
): ExpertLayout {
  const l0 = names.layer(0);
  if (index.has(l0.expert(0).gate)) return 'per-expert';
  if (l0.packed && index.has(l0.packed.gateUp)) return 'packed';
  throw new CheckpointError(
    `${dir}: no expert weights found for layer 0: expected "${l0.expert(0).gate}"${l0.packed ? ` or the packed "${l0.packed.gateUp}"` : ''}`,
  );
}
