import { useMemo, useSyncExternalStore } from "react";
import { Api } from "../api";
import { loadConfig } from "../config";
import { loadSession } from "../session";
import { Login } from "./Login";
import { Messenger } from "./Messenger";

export function App() {
  const config = useMemo(loadConfig, []);
  const api = useMemo(() => new Api(config.apiBaseUrl, loadSession()), [config]);
  const session = useSyncExternalStore(api.onSessionChange, api.currentSession);
  if (!session) return <Login api={api} stage={config.stage} notice={api.signedOutNotice} />;
  // keyed by device: a new sign-in starts a new client, a token rotation does not
  return <Messenger key={session.deviceId} api={api} me={session} />;
}
