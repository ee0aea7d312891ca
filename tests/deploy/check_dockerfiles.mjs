// Lints Dockerfiles (no container engine is needed):
//   node check_dockerfiles.mjs Dockerfile...
// - dockerfile-utils' validator (syntax, instruction arguments, flags);
// - rules of our own: every FROM names a pinned image (a tag other than
//   latest, or a digest; ARG defaults count); the final stage sets a non-root
//   USER; apt-get install uses --no-install-recommends and cleans its lists;
//   no apt-get upgrade; no ADD of remote URLs.
// Prints one line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import { validate } from "dockerfile-utils";

const problems = [];
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  for (const d of validate(text)) {
    // Severity 1 = error, 2 = warning.
    problems.push(`${file}:${d.range.start.line + 1}: ${d.severity === 1 ? "error" : "warning"}: ${d.message}`);
  }
  // Instructions with their continuation lines joined.
  const lines = text.split("\n");
  const instructions = [];
  for (let i = 0; i < lines.length; ++i) {
    if (/^\s*(#|$)/.test(lines[i])) continue;
    let line = lines[i];
    const start = i;
    while (line.endsWith("\\") && i + 1 < lines.length) line = line.slice(0, -1) + " " + lines[++i];
    instructions.push({ line: start + 1, text: line.trim() });
  }
  const args = {};
  let stages = 0;
  let user = null;
  for (const { line, text: ins } of instructions) {
    const [op, ...rest] = ins.split(/\s+/);
    const arg = rest.join(" ");
    const where = `${file}:${line}`;
    switch (op.toUpperCase()) {
      case "ARG": {
        const m = arg.match(/^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/);
        if (m && m[2] !== undefined) args[m[1]] = m[2];
        break;
      }
      case "FROM": {
        ++stages;
        user = null;
        let image = rest.filter((t) => !t.startsWith("--"))[0] || "";
        image = image.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n) => args[n] ?? "");
        if (!image) problems.push(`${where}: FROM names no image`);
        else if (image.includes("@")) break;
        else {
          const tag = image.split("/").pop().split(":")[1];
          if (!tag) problems.push(`${where}: FROM ${image} is not pinned to a tag`);
          else if (tag === "latest") problems.push(`${where}: FROM ${image} uses latest`);
        }
        break;
      }
      case "USER":
        user = arg.split(":")[0];
        break;
      case "RUN":
        if (/apt-get\s+(-\S+\s+)*(dist-)?upgrade/.test(arg)) problems.push(`${where}: apt-get upgrade`);
        if (/apt-get\s+install/.test(arg)) {
          if (!arg.includes("--no-install-recommends")) {
            problems.push(`${where}: apt-get install without --no-install-recommends`);
          }
          if (!arg.includes("rm -rf /var/lib/apt/lists")) {
            problems.push(`${where}: apt-get install without removing /var/lib/apt/lists`);
          }
        }
        break;
      case "ADD":
        if (/https?:\/\//.test(arg)) problems.push(`${where}: ADD of a URL (use RUN curl with a checksum)`);
        break;
      default:
        break;
    }
  }
  if (stages === 0) problems.push(`${file}: no FROM`);
  if (user === null) problems.push(`${file}: the final stage sets no USER (it would run as root)`);
  else if (user === "root" || user === "0") problems.push(`${file}: the final stage runs as root`);
}
if (problems.length > 0) {
  for (const p of problems) console.log(`FAIL ${p}`);
  process.exit(1);
}
console.log(`OK ${process.argv.slice(2).join(", ")}`);
