/** The TPM 2.0 driver: typed commands, one marshalling mechanism, device and swtpm transports. */
export * from '../../protocol/tpm/constants.ts';
export * from '../../protocol/tpm/errors.ts';
export { describeRc, type RcInfo } from '../../protocol/tpm/rc.ts';
export { Reader, Writer } from '../../protocol/tpm/marshal.ts';
export * from '../../protocol/tpm/structures.ts';
export * as commands from './commands.ts';
export { TpmClient, type TpmClientOptions, type TpmInfo, type FreeHandles } from './client.ts';
export { parseTpmUrl, describeTarget, openTransport, type TpmTarget, type Transport } from './transport.ts';
export { SwtpmControl, SWTPM_CMD } from './swtpm-ctrl.ts';
