// SIP: message layer, transports, transactions, registrar, digest authentication, the service.
export * from './message.ts';
export * from './uri.ts';
export * from './validate.ts';
export * from './serialize.ts';
export * from './transport.ts';
export * from './transaction.ts';
export * from './digest.ts';
export * from './registrar.ts';
export * from './service.ts';
