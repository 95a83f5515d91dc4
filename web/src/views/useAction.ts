import { useCallback, useRef, useState } from "react";
import { explain } from "./explain";

export interface AsyncAction {
  /** Runs one call at a time; true when it succeeded, else the error is set in words. */
  run: (call: () => Promise<unknown>) => Promise<boolean>;
  busy: boolean;
  error: string | null;
}

/** A button's call to the server: busy while it runs, its failure explained. */
export function useAction(): AsyncAction {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const running = useRef(false);
  const run = useCallback(async (call: () => Promise<unknown>) => {
    if (running.current) return false;
    running.current = true;
    setBusy(true);
    setError(null);
    try {
      await call();
      return true;
    } catch (caught) {
      setError(explain(caught));
      return false;
    } finally {
      running.current = false;
      setBusy(false);
    }
  }, []);
  return { run, busy, error };
}
