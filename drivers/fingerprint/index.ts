/** The ZFM-family serial fingerprint module driver (R307, R503, AS608, ZFM-20): codec, parser, driver, discovery. */
export * from './constants.ts';
export * from './confirmation.ts';
export * from './errors.ts';
export * from './codec.ts';
export * from './parser.ts';
export * from './commands.ts';
export * from './image.ts';
export * from './driver.ts';
export * from './discovery.ts';
