// Types of core/bundle.mjs (plain JavaScript: bin/dots.js loads it before any TypeScript loader).

/**
 * Bundles the module at `entry` (a file: URL) and what it imports of ours (and, with
 * `esmPackages`, the packages it imports that are ES modules): the code, and the files it was built from.
 */
export function bundleModule(entry: URL, esmPackages?: boolean): Promise<{ code: Uint8Array; inputs: string[] }>;

/** The bundle of `entry` as a file: URL in `dir`, rebuilt whenever a file it was built from changed on disk. */
export function cachedBundle(entry: URL, dir: string): Promise<string>;

/** Where bundles are kept: DOTS_BUNDLE_DIR, else the package's own node_modules/.cache/dots. */
export function bundleDir(): string;
