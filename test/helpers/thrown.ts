/** The error `f` throws (so a test can check its class and message together); fails if none. */
export function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error, none was thrown");
}
