// Where the API and the WebSocket are: injected by whoever serves the page (the local stack
// writes `window.EPHEMERA_CONFIG`), else the page's own origin.

export interface ClientConfig {
  apiBaseUrl: string;
  wsUrl: string;
  stage: string;
}

declare global {
  interface Window {
    EPHEMERA_CONFIG?: Partial<ClientConfig>;
  }
}

export function loadConfig(): ClientConfig {
  const injected = window.EPHEMERA_CONFIG ?? {};
  const origin = window.location.origin;
  return {
    apiBaseUrl: (injected.apiBaseUrl ?? origin).replace(/\/$/, ""),
    wsUrl: injected.wsUrl ?? origin.replace(/^http/, "ws") + "/ws",
    stage: injected.stage ?? "prod",
  };
}
