// `--name value` arguments of the bench's analysis scripts, over a set of defaults: an unknown
// name is an error, and a value is a number where its default is one.
export function flagArgs(argv, defaults) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown argument ${argv[i]}`);
    const v = argv[++i];
    o[k] = typeof defaults[k] === 'number' ? Number(v) : v;
  }
  return o;
}
