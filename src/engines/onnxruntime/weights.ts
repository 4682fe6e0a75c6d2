/**
 * Puts a checkpoint's weights where ONNX Runtime can memory-map them as external data.
 *
 * ORT resolves external data relative to the model file and refuses paths that leave its folder, so
 * the cache folder holds hard links to the checkpoint's safetensors files: a tensor already in the
 * compute dtype is then referenced in place (offset = its position in the safetensors file) and costs
 * no copy. Everything else — other dtypes, and the experts, which the MoE operator wants stacked as
 * [E, out, in] — is converted once into weights.bin / experts.bin in the cache folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Checkpoint } from './checkpoint';
import type { ExternalRef } from './formats/onnxWriter';
import { fromFloat32, firstNonFinite } from './formats/dtypes';
import { moeLayersOf } from './familyFeatures';
import { EngineFailure, type ComputeDType, type ExecutionProvider } from '../../shared/protocol';

/**
 * How fc1 of the MoE operator is laid out. The CPU kernel only accepts fused SwiGLU with gate and up
 * rows interleaved (gate0, up0, gate1, up1, ...); the CUDA kernel takes gate as fc1 and up as fc3
 * (WebGPU's standard-ops experts read that layout too).
 */
export type ExpertPacking = 'swiglu-interleaved' | 'fc1-gate-fc3-up';

export interface ExpertRefs {
  fc1: ExternalRef;
  fc1Dims: number[];
  fc2: ExternalRef;
  fc2Dims: number[];
  fc3?: ExternalRef;
  fc3Dims?: number[];
}

export interface PreparedWeights {
  ref(name: string): ExternalRef;
  experts(layer: number): ExpertRefs;
  /** Bytes written by conversion (0 when every tensor could be referenced in place). */
  convertedBytes: number;
  linkedFiles: number;
}

export function expertPackingFor(provider: ExecutionProvider): ExpertPacking {
  // WebGPU computes the experts with standard ops from the same gate/up/down layout as CUDA.
  return provider === 'cpu' ? 'swiglu-interleaved' : 'fc1-gate-fc3-up';
}

export class AppendFile {
  private fd: number;
  offset = 0;
  constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.fd = fs.openSync(path.join(dir, name), 'w');
  }
  append(bytes: Uint8Array): ExternalRef {
    const ref = { location: this.name, offset: this.offset, length: bytes.byteLength };
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(this.fd, bytes, done, bytes.byteLength - done);
    this.offset += bytes.byteLength;
    return ref;
  }
  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }
  /** Closes without syncing: the build failed and its folder is removed. */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/**
 * `exclude`: tensors another writer prepares (the int8/int4 projections of precision/); `experts: false`
 * leaves the experts to it too (experts(l) then throws).
 */
export function prepareWeights(
  ckpt: Checkpoint,
  dir: string,
  dtype: ComputeDType,
  packing: ExpertPacking,
  opts: { exclude?: ReadonlySet<string>; experts?: boolean } = {},
): PreparedWeights {
  const wantStorage = dtype === 'float32' ? 'F32' : 'F16';
  const links = new Map<string, string>();
  const linkFor = (file: string): string | null => {
    if (links.has(file)) return links.get(file)!;
    const name = `ckpt-${links.size}.safetensors`;
    const target = path.join(dir, name);
    try {
      fs.rmSync(target, { force: true });
      // Hub snapshots hold relative symlinks into ../../blobs/: link() would link the symlink itself,
      // which dangles once in the cache folder. Link the file it points to.
      fs.linkSync(fs.realpathSync(file), target);
      links.set(file, name);
      return name;
    } catch {
      return null; // another file system or no permission: fall back to converting
    }
  };
  const weights = new AppendFile(dir, 'weights.bin');
  const refs = new Map<string, ExternalRef>();
  const expertNames = new Set<string>();
  for (const l of moeLayersOf(ckpt.arch)) {
    const ln = ckpt.names.layer(l);
    for (let e = 0; e < ckpt.arch.numExperts; e++) Object.values(ln.expert(e)).forEach((n) => expertNames.add(n));
    if (ln.packed) Object.values(ln.packed).forEach((n) => expertNames.add(n));
    if (ln.stackedRows) Object.values(ln.stackedRows).forEach((n) => expertNames.add(n));
  }
  for (const { name } of ckpt.expectedTensors()) {
    if (expertNames.has(name) || refs.has(name) || opts.exclude?.has(name)) continue;
    const t = ckpt.tensor(name);
    const values = ckpt.readFloat32(name);
    requireFiniteWeights(values, name, t.file);
    const link = t.dtype === wantStorage ? linkFor(t.file) : null;
    if (link) refs.set(name, { location: link, offset: t.fileOffset, length: t.byteLength });
    else refs.set(name, weights.append(encode(values, dtype)));
  }
  weights.close();

  const perLayer: ExpertRefs[] = [];
  const experts = new AppendFile(dir, 'experts.bin');
  const { numExperts: E, hiddenSize: H, expertIntermediate: I } = ckpt.arch;
  for (const l of opts.experts === false ? [] : moeLayersOf(ckpt.arch)) {
    const fc1 = new Float32Array(E * (packing === 'swiglu-interleaved' ? 2 * I : I) * H);
    const fc2 = new Float32Array(E * H * I);
    const fc3 = packing === 'fc1-gate-fc3-up' ? new Float32Array(E * I * H) : null;
    for (let e = 0; e < E; e++) {
      const x = ckpt.readExpert(l, e);
      for (const [part, values] of Object.entries(x)) requireFiniteWeights(values, expertTensorName(ckpt, l, e, part as keyof typeof x), ckpt.dir);
      if (packing === 'swiglu-interleaved') {
        const base = e * 2 * I * H;
        for (let r = 0; r < I; r++) {
          fc1.set(x.gate.subarray(r * H, (r + 1) * H), base + 2 * r * H);
          fc1.set(x.up.subarray(r * H, (r + 1) * H), base + (2 * r + 1) * H);
        }
      } else {
        fc1.set(x.gate, e * I * H);
        fc3!.set(x.up, e * I * H);
      }
      fc2.set(x.down, e * H * I);
    }
    const refs1: ExpertRefs = {
      fc1: experts.append(encode(fc1, dtype)),
      fc1Dims: [E, packing === 'swiglu-interleaved' ? 2 * I : I, H],
      fc2: experts.append(encode(fc2, dtype)),
      fc2Dims: [E, H, I],
    };
    if (fc3) {
      refs1.fc3 = experts.append(encode(fc3, dtype));
      refs1.fc3Dims = [E, I, H];
    }
    perLayer[l] = refs1;
  }
  experts.close();
  return {
    ref(name) {
      const r = refs.get(name);
      if (!r) throw new Error(`weight "${name}" was not prepared`);
      return r;
    },
    experts: (l) => {
      if (!perLayer[l]) throw new Error(`the float experts of layer ${l} were not prepared`);
      return perLayer[l];
    },
    convertedBytes: weights.offset + experts.offset,
    linkedFiles: links.size,
  };
}

/**
 * A NaN or infinite weight makes every result meaningless (and ONNX Runtime may turn it into a finite
 * but arbitrary output), so the graph build, which reads every weight once anyway, refuses it by name.
 */
export function requireFiniteWeights(values: Float32Array, name: string, file: string): void {
  const i = firstNonFinite(values);
  if (i >= 0) throw nonFiniteWeight(name, file, i, values[i]);
}

export function nonFiniteWeight(name: string, file: string, index: number, value: number): EngineFailure {
  return new EngineFailure(
    'non-finite',
    `${file}: checkpoint tensor "${name}" holds ${value} at element ${index}; a model with non-finite weights cannot produce meaningful routing or answers`,
  );
}

export function expertTensorName(ckpt: Checkpoint, layer: number, expert: number, part: 'gate' | 'up' | 'down'): string {
  const ln = ckpt.names.layer(layer);
  if (ckpt.expertLayout === 'per-expert') return ln.expert(expert)[part];
  if (ckpt.expertLayout === 'stacked-rows') return `${ln.stackedRows![part]} (expert ${expert})`;
  return `${part === 'down' ? ln.packed!.down : ln.packed!.gateUp} (expert ${expert}, ${part})`;
}

function encode(values: Float32Array, dtype: ComputeDType): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return fromFloat32(values, 'F16');
}
