// The EdgePrompt version, written in one place: package.json. The CLI's --version, the compiler
// version recorded in every manifest and the ONNX producer version all read it from here (the
// runtime bundle inlines it).

import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
