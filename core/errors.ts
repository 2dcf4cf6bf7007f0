// Typed errors. A consensus rejection carries a stable machine-readable code (the reason) and a
// human message; peers are scored and API callers answered from the code.

export class DotsError extends Error {
  override name = 'DotsError';
}

/** Bytes that are not the canonical encoding of a value of the expected shape. */
export class EncodingError extends DotsError {
  override name = 'EncodingError';
}

/** A record, block or header that breaks a consensus rule. */
export class ValidationError extends DotsError {
  override name = 'ValidationError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** A mistake of the person running the program: bad flag, bad config, locked data directory. */
export class UserError extends DotsError {
  override name = 'UserError';
}
