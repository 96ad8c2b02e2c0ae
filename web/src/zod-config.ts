/**
 * zod compiles fast parsers with `new Function` when eval is allowed, and probes for it first. The
 * page's CSP forbids eval (no 'unsafe-eval'), and even the caught probe is reported as a CSP
 * violation: jitless skips the probe and the compiler. Imported first by main.tsx.
 */
import { z } from "zod";

z.config({ jitless: true });
