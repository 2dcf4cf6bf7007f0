// SIP message layer: re-exports.
export * from './message.ts';
export * from './uri.ts';
export * from './validate.ts';
export * from './serialize.ts';
