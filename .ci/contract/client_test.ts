// A typed client for berth: types generated from its /openapi.json by openapi-typescript, requests
// made with openapi-fetch. tsc checks every call below against the document (paths, parameters,
// bodies, answers); then it runs against a running berth: a signup, the status page as JSON until
// the site is ready, a refused second signup, and an admin listing. `.ci/openapi` generates
// `schema.d.ts` beside it and sets BERTH_CONTRACT_URL and BERTH_CONTRACT_ADMIN_TOKEN.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Signup = components["schemas"]["SignupJson"];

const baseUrl = process.env.BERTH_CONTRACT_URL;
const token = process.env.BERTH_CONTRACT_ADMIN_TOKEN;
if (!baseUrl || !token) throw new Error("BERTH_CONTRACT_URL and BERTH_CONTRACT_ADMIN_TOKEN are needed");
const berth = createClient<paths>({ baseUrl });

function check(condition: boolean, what: string, value?: unknown): asserts condition {
    if (!condition) throw new Error(`${what}: ${JSON.stringify(value)}`);
}

const name = `typed-client-${process.pid}`;
const signup: Signup = { name, email: "typed@example.com", html: "<h1>From a typed client</h1>" };

const created = await berth.POST("/signup", { body: signup });
check(created.response.status === 201 && created.data !== undefined, "signup", created.error);
check(created.data.name === name && created.data.tenant === "default", "created", created.data);
check(created.data.state === "provisioning", "state after signup", created.data.state);
const id = created.data.id;

// The worker brings the site up; read the status page until it says so.
let state = "";
for (let attempt = 0; attempt < 120 && state !== "ready"; attempt++) {
    const status = await berth.GET("/t/{tenant}/sites/{id}", {
        params: { path: { tenant: "default", id } },
        headers: { Accept: "application/json" },
    });
    check(status.data !== undefined && typeof status.data === "object", "status", status.error);
    check(status.data.id === id, "status id", status.data);
    state = status.data.state;
    if (state !== "ready") await new Promise((resolve) => setTimeout(resolve, 500));
}
check(state === "ready", "the site never became ready; it is", state);

const again = await berth.POST("/signup", { body: signup });
check(again.response.status === 409 && again.error !== undefined, "second signup", again.data);
check(again.error.error.code === "name_taken", "second signup's code", again.error);

const listed = await berth.GET("/admin/sites", {
    params: { query: { tenant: "default", limit: 10 } },
    headers: { Authorization: `Bearer ${token}` },
});
check(listed.data !== undefined, "admin listing", listed.error);
check(listed.data.sites.some((site) => site.id === id), "the new site is listed", listed.data);

console.log(`typed client: signed up ${name} (${id}), read it ready, was refused a second time, listed it`);
