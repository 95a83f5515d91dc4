// PROTOCOL "Safety, management and the account": `POST /me/delete-challenge` then
// `DELETE /me {challenge_id, code}` deletes my account and signs this device out; a wrong code
// says how many attempts are left and spends only one; `GET /me/export` is saved as a file.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError } from "../src/api";
import { exportFileName, saveJson } from "../src/exportFile";
import type { StoredSession } from "../src/session";
import { explain } from "../src/views/explain";

const SESSION: StoredSession = { accessToken: "at-1", refreshToken: "rt-1", userId: "u-me", phone: "+14155550101", deviceId: "d1" };
const BASE = "https://api.test";

interface Call {
  method: string;
  path: string;
  body: unknown;
  token: string | undefined;
}

let calls: Call[];
let replies: Record<string, (call: Call) => Response>;
let stored: Map<string, string>;

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

beforeEach(() => {
  calls = [];
  replies = {};
  stored = new Map([["ephemera.session", JSON.stringify(SESSION)], ["ephemera.outbox", "[]"]]);
  vi.stubGlobal("sessionStorage", {
    getItem: (key: string) => stored.get(key) ?? null,
    setItem: (key: string, value: string) => stored.set(key, value),
    removeItem: (key: string) => stored.delete(key),
  });
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const headers = init.headers as Record<string, string>;
    const call: Call = {
      method: init.method ?? "GET",
      path: url.slice(BASE.length),
      body: init.body ? JSON.parse(init.body as string) : undefined,
      token: headers.Authorization?.replace("Bearer ", ""),
    };
    calls.push(call);
    const reply = replies[`${call.method} ${call.path}`];
    if (!reply) throw new Error(`unexpected ${call.method} ${call.path}`);
    return reply(call);
  });
});

afterEach(() => vi.unstubAllGlobals());

describe("deleting my account", () => {
  it("asks for a code, then deletes with it, and clears the session here", async () => {
    replies["POST /me/delete-challenge"] = () => json(202, { challenge_id: "ch-1", expires_in: 300, resend_after: 30 });
    replies["DELETE /me"] = () => new Response(null, { status: 204 });
    const api = new Api(BASE, SESSION);
    const changes = vi.fn();
    api.onSessionChange(changes);

    const challenge = await api.deleteChallenge();
    expect(challenge).toEqual({ challenge_id: "ch-1", expires_in: 300, resend_after: 30 });
    await api.deleteAccount("ch-1", "123456");

    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(["POST /me/delete-challenge", "DELETE /me"]);
    expect(calls[1]).toMatchObject({ body: { challenge_id: "ch-1", code: "123456" }, token: "at-1" });
    expect(api.currentSession()).toBeNull();
    expect(stored.has("ephemera.session")).toBe(false);
    expect(stored.has("ephemera.outbox")).toBe(false);
    expect(changes).toHaveBeenCalled();
    expect(api.signedOutNotice).toBe("Your account was deleted.");
  });

  it("a wrong code says the attempts left, keeps me signed in, and is not sent again after a refresh", async () => {
    replies["DELETE /me"] = () => json(401, { error: { code: "unauthorized", message: "wrong code", attempts_left: 2 } });
    replies["POST /auth/refresh"] = () => {
      throw new Error("a wrong code must not refresh the token");
    };
    const api = new Api(BASE, SESSION);

    const refused = await api.deleteAccount("ch-1", "000000").catch((error: unknown) => error);

    expect(refused).toBeInstanceOf(ApiError);
    expect(explain(refused, "verify-code")).toBe("That code is not right. 2 attempts left.");
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(["DELETE /me"]);
    expect(api.currentSession()).toEqual(SESSION);
    expect(api.signedOutNotice).toBeNull();
  });

  it("an expired access token is refreshed once and the deletion goes again", async () => {
    let deletes = 0;
    replies["DELETE /me"] = () =>
      ++deletes === 1 ? json(401, { error: { code: "unauthorized", message: "token expired" } }) : new Response(null, { status: 204 });
    replies["POST /auth/refresh"] = () => json(200, {
      access_token: "at-2", refresh_token: "rt-2", expires_in: 900, user: { id: "u-me", phone: SESSION.phone }, device_id: "d1",
    });
    const api = new Api(BASE, SESSION);

    await api.deleteAccount("ch-1", "123456");

    expect(calls.map((c) => `${c.method} ${c.path} ${c.token ?? "-"}`)).toEqual([
      "DELETE /me at-1", "POST /auth/refresh -", "DELETE /me at-2",
    ]);
    expect(api.currentSession()).toBeNull();
  });

  it("signing in again forgets the notice", async () => {
    replies["DELETE /me"] = () => new Response(null, { status: 204 });
    replies["POST /auth/verify"] = () => json(200, {
      access_token: "at-9", refresh_token: "rt-9", expires_in: 900, user: { id: "u-new", phone: SESSION.phone }, device_id: "d9",
    });
    const api = new Api(BASE, SESSION);
    await api.deleteAccount("ch-1", "123456");
    await api.verifyCode("ch-2", "654321", "Chrome (web)");
    expect(api.signedOutNotice).toBeNull();
  });
});

describe("downloading my data", () => {
  it("GET /me/export is saved as ephemera-export-YYYY-MM-DD.json holding the JSON", async () => {
    const exported = { profile: { phone: SESSION.phone }, messages: [{ body: "still here" }] };
    replies["GET /me/export"] = () => json(200, exported);
    const api = new Api(BASE, SESSION);
    const clicked: { href: string; download: string; hidden: boolean }[] = [];
    const blobs = new Map<string, Blob>();
    const revoked: string[] = [];
    const link = {
      href: "", download: "", hidden: false, removed: false,
      click() {
        clicked.push({ href: this.href, download: this.download, hidden: this.hidden });
      },
      remove() {
        this.removed = true;
      },
    };
    const body = { append: vi.fn() };
    vi.useFakeTimers();
    try {
      saveJson(await api.exportData(), exportFileName(new Date(2026, 10, 3, 23, 59)), {
        document: { createElement: () => link, body } as never,
        urls: {
          createObjectURL: (blob: Blob) => {
            blobs.set("blob:1", blob);
            return "blob:1";
          },
          revokeObjectURL: (url: string) => revoked.push(url),
        },
      });
      expect(clicked).toEqual([{ href: "blob:1", download: "ephemera-export-2026-11-03.json", hidden: true }]);
      expect(body.append).toHaveBeenCalledWith(link);
      expect(link.removed).toBe(true);
      const blob = blobs.get("blob:1")!;
      expect(blob.type).toBe("application/json");
      expect(JSON.parse(await blob.text())).toEqual(exported);
      expect(revoked).toEqual([]); // the browser may still be reading it
      vi.advanceTimersByTime(10_000);
      expect(revoked).toEqual(["blob:1"]);
    } finally {
      vi.useRealTimers();
    }
    expect(calls.map((c) => `${c.method} ${c.path} ${c.token}`)).toEqual(["GET /me/export at-1"]);
  });
});
