/**
 * Writing ONNX models with onnx-proto: a small graph builder that keeps node construction readable
 * (`g.op('MatMul', [a, b])` returns the output name) and stores large weights as external data, i.e.
 * (file, offset, length) references that ONNX Runtime memory-maps relative to the model file.
 */
import { onnx } from 'onnx-proto';

export type OnnxElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

const ELEM: Record<OnnxElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

export interface ExternalRef {
  /** Path relative to the model file's folder. */
  location: string;
  offset: number;
  length: number;
}

export class OnnxGraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly taken = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let n = `${prefix}_${this.counter++}`;
    while (this.taken.has(n)) n = `${prefix}_${this.counter++}`;
    this.taken.add(n);
    return n;
  }

  input(name: string, type: OnnxElemType, dims: Dim[]): string {
    this.taken.add(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: OnnxElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Adds a node and returns its output names (one per `numOutputs`). */
  opN(
    opType: string,
    inputs: string[],
    numOutputs: number,
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: string[]; name?: string } = {},
  ): string[] {
    const outs = opts.outputs ?? Array.from({ length: numOutputs }, () => this.fresh(opType.toLowerCase()));
    for (const o of outs) this.taken.add(o);
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      name: opts.name ?? this.fresh(`n_${opType}`),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { domain?: string; output?: string; name?: string } = {}): string {
    return this.opN(opType, inputs, 1, attrs, { domain: opts.domain, outputs: opts.output ? [opts.output] : undefined, name: opts.name })[0];
  }

  constInt64(values: number[], dims: number[] = [values.length], prefix = 'const_i64'): string {
    const name = this.fresh(prefix);
    this.initializers.push({ name, dataType: ELEM.int64, dims, int64Data: values });
    return name;
  }

  constFloat(values: number[], dims: number[] = [values.length], prefix = 'const_f32'): string {
    const name = this.fresh(prefix);
    this.initializers.push({ name, dataType: ELEM.float32, dims, floatData: values });
    return name;
  }

  /** True when a value (input, initializer or node output) of that name exists. */
  has(name: string): boolean {
    return this.taken.has(name);
  }

  /** A weight stored outside the model file. */
  external(name: string, type: OnnxElemType, dims: number[], ref: ExternalRef): string {
    this.taken.add(name);
    this.initializers.push({
      name,
      dataType: ELEM[type],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: ref.location },
        { key: 'offset', value: String(ref.offset) },
        { key: 'length', value: String(ref.length) },
      ],
    });
    return name;
  }

  /** Serialises the model: IR 8, default opset 17 plus the com.microsoft contrib domain. */
  toBytes(opts: { producer: string; docString?: string }): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: opts.producer,
      docString: opts.docString,
      opsetImport: [
        { domain: '', version: 17 },
        { domain: 'com.microsoft', version: 1 },
      ],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  get nodeCount(): number {
    return this.nodes.length;
  }
}

function valueInfo(name: string, type: OnnxElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float: x } for non-integer values`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
