import { translateIstio } from './translate.js';
import { ISTIO_API_VERSIONS, ISTIO_KINDS, type Generated, type IstioDoc, type IstioProblem, type Obj, type TranslateOptions } from './types.js';
import { isObj, validateDoc } from './validate.js';

export { clusterName, translateIstio } from './translate.js';
export type { Generated, IstioDoc, IstioProblem, TranslateOptions } from './types.js';

/** Whether a parsed document is an Istio networking object this control plane translates. */
export function isIstioDoc(doc: Obj): boolean {
  return typeof doc.apiVersion === 'string' && ISTIO_API_VERSIONS.has(doc.apiVersion) && ISTIO_KINDS.has(doc.kind);
}

export function toIstioDoc(doc: Obj, file: string, where: string): IstioDoc {
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  return { kind: doc.kind, name: String(meta.name ?? ''), namespace: String(meta.namespace ?? 'default'), spec: doc.spec, file, where };
}

/**
 * Translation across reloads. A file whose Istio objects are broken (bad YAML, an invalid
 * field) keeps serving its last good version: one typo in a VirtualService must not take a
 * service's routes away. A file that was never good contributes nothing.
 */
export class IstioState {
  private readonly lastGood = new Map<string, IstioDoc[]>();

  constructor(readonly opts: TranslateOptions) {}

  /**
   * `files`: the Istio objects read from each file this round (only files that held Istio
   * objects, or had been Istio files and now fail to parse, listed in `broken`).
   */
  translate(files: ReadonlyMap<string, IstioDoc[]>, broken: ReadonlySet<string>): { resources: Generated[]; problems: IstioProblem[] } {
    const problems: IstioProblem[] = [];
    const use: IstioDoc[] = [];
    const seen = new Set<string>();
    for (const [file, docs] of files) {
      seen.add(file);
      const errors = docs.flatMap((d) => validateDoc(d).map((e) => ({ ...e, file, severity: 'error' as const })));
      if (!errors.length && !broken.has(file)) {
        this.lastGood.set(file, docs);
        use.push(...docs);
        continue;
      }
      problems.push(...errors);
      this.keepLastGood(file, problems, use);
    }
    for (const file of broken) if (!seen.has(file)) this.keepLastGood(file, problems, use);
    // Files gone from the directory (neither read nor broken) are forgotten.
    for (const file of [...this.lastGood.keys()]) if (!files.has(file) && !broken.has(file)) this.lastGood.delete(file);
    const t = translateIstio(use, this.opts);
    return { resources: t.resources, problems: [...problems, ...t.problems] };
  }

  /** Whether `file` held Istio objects the last time it was good. */
  knows(file: string): boolean {
    return this.lastGood.has(file);
  }

  private keepLastGood(file: string, problems: IstioProblem[], use: IstioDoc[]): void {
    const prev = this.lastGood.get(file);
    problems.push({
      file,
      path: '',
      severity: 'error',
      message: prev ? 'invalid; its last good version keeps serving' : 'invalid and never loaded; nothing from it is served',
    });
    if (prev) use.push(...prev);
  }
}
