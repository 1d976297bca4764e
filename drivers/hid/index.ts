/** USB HID: the report transport, the node-hid binding, the iris camera and the card/barcode scanner. */
export * from './errors.ts';
export * from './transport.ts';
export * from './node-hid.ts';
export * from './iris-protocol.ts';
export * from './iris-camera.ts';
export * from './keyboard.ts';
export * from './card-scanner.ts';
