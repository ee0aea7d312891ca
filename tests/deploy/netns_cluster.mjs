// A Kubernetes deployment on one machine: every pod of a rendered overlay
// becomes a network namespace (ip netns) on one bridge, with the pod's DNS
// names in its hosts file, its volumes as bind mounts in a private mount
// namespace (configMap and secret files written out, emptyDirs fresh), and
// its container started with exactly the manifest's command, args and
// environment, as the manifest's user and with its root filesystem read-only
// where the manifest says so; NetworkPolicies become nftables rules. Then rlctl submits a one-step run to the controller and the
// test waits for it to finish and audits it.
//   node netns_cluster.mjs --bin-dir DIR --source-dir DIR RENDERED.yaml
// Needs root (ip netns, mounts); exits 77 (skipped) without it.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments } from "yaml";

const argv = process.argv.slice(2);
const opt = { bin: "", src: "", file: "" };
for (let i = 0; i < argv.length; ++i) {
  if (argv[i] === "--bin-dir") opt.bin = argv[++i];
  else if (argv[i] === "--source-dir") opt.src = argv[++i];
  else opt.file = argv[i];
}

function skip(why) {
  console.log(`SKIP: ${why}`);
  process.exit(77);
}
if (process.getuid() !== 0) skip("needs root (network namespaces, mounts)");
const run = (cmd, args, o = {}) => execFileSync(cmd, args, { encoding: "utf8", ...o });
// What the emulation needs from the kernel and the tools: a network
// namespace with a veth pair and nftables in it, and mount/UTS namespaces.
// A machine (or container) that cannot give them skips, saying which failed.
try {
  run("ip", ["netns", "add", "rlpost-probe"], { stdio: "pipe" });
  try {
    run("ip", ["link", "add", "rlpprobe0", "type", "veth", "peer", "name", "rlpprobe1"], { stdio: "pipe" });
    run("ip", ["link", "delete", "rlpprobe0"], { stdio: "pipe" });
    run("ip", ["netns", "exec", "rlpost-probe", "nft", "add", "table", "inet", "rlpost_probe"], { stdio: "pipe" });
  } finally {
    run("ip", ["netns", "delete", "rlpost-probe"], { stdio: "pipe" });
  }
  run("unshare", ["--mount", "--uts", "true"], { stdio: "pipe" });
} catch (e) {
  skip(`this machine cannot emulate pods: ${String(e.stderr || e.message).trim().split("\n")[0]}`);
}

const objects = parseAllDocuments(fs.readFileSync(opt.file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const byKind = (k) => objects.filter((o) => o.kind === k);
// This machine has no GPU: a run config's "device: cuda" (the gpu-cluster
// overlay's rollout.device and learner.device) runs as cpu here, said once.
// check_manifests.mjs checks that such settings match the GPU limits.
const cpuOnly = (text) => text.replace(/^(\s*device:\s*)cuda(:\d+)?\s*$/gm, "$1cpu");
const configMaps = new Map(byKind("ConfigMap").map((o) => {
  const data = Object.fromEntries(Object.entries(o.data || {}).map(([k, v]) => [k, cpuOnly(v)]));
  const moved = Object.entries(o.data || {}).filter(([k, v]) => data[k] !== v).map(([k]) => k);
  if (moved.length > 0) console.log(`note: no GPU here: ConfigMap ${o.metadata.name} ${moved.join(", ")}: device cuda runs as cpu`);
  return [o.metadata.name, data];
}));
const secrets = new Map(byKind("Secret").map((o) => [o.metadata.name,
  Object.fromEntries(Object.entries(o.data || {}).map(([k, v]) => [k, Buffer.from(v, "base64")]))]));

// Pods: name, DNS names, the pod spec, extra environment (what Kubernetes adds).
const pods = [];
for (const o of objects) {
  const spec = o.spec;
  const name = o.metadata.name;
  if (o.kind === "Deployment") {
    for (let i = 0; i < (spec.replicas ?? 1); ++i) pods.push({ name: `${name}-${i}`, template: spec.template, env: {} });
  } else if (o.kind === "StatefulSet") {
    for (let i = 0; i < (spec.replicas ?? 1); ++i) {
      pods.push({ name: `${name}-${i}`, dns: [`${name}-${i}.${spec.serviceName}`], template: spec.template, env: {} });
    }
  } else if (o.kind === "Job" && spec.completionMode === "Indexed") {
    for (let i = 0; i < (spec.parallelism ?? 1); ++i) {
      const sub = spec.template.spec.subdomain;
      pods.push({ name: `${name}-${i}`, dns: sub ? [`${name}-${i}.${sub}`] : [], template: spec.template,
                  env: { JOB_COMPLETION_INDEX: String(i) } });
    }
  }
}
pods.forEach((p, i) => { p.ip = `10.213.0.${10 + i}`; p.ns = `rlpost-t${i}`; p.dns = p.dns || []; });
// Services: a name resolves to the pods its selector picks (a ClusterIP
// Service to the first; fine for one replica per Service here).
const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels[k] === v);
const hosts = [];
for (const svc of byKind("Service")) {
  for (const p of pods) {
    if (matches(svc.spec.selector, p.template.metadata.labels || {})) hosts.push([p.ip, svc.metadata.name]);
  }
}
for (const p of pods) for (const d of p.dns) hosts.push([p.ip, d]);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "rlpost-netns-"));

// cert-manager, as the overlay's Issuers would: one CA signs every
// Certificate, with its dnsNames and ipAddresses as subject alternative names
// and its usages as extended key usages; each lands in the Secret it names
// (tls.crt, tls.key, ca.crt).
const certificates = byKind("Certificate");
let operatorTls = null;  // the client certificate rlctl uses (no dnsNames)
if (certificates.length > 0) {
  const dir = path.join(work, "cert-manager");
  fs.mkdirSync(dir);
  const ssl = (args) => run("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rlpost-ca"]);
  const ca = fs.readFileSync(path.join(dir, "ca.crt"));
  for (const c of certificates) {
    const name = c.metadata.name;
    if (c.spec.isCA) {
      secrets.set(c.spec.secretName, { "tls.crt": ca, "tls.key": fs.readFileSync(path.join(dir, "ca.key")), "ca.crt": ca });
      continue;
    }
    ssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${c.spec.commonName || name}`]);
    const sans = [...(c.spec.dnsNames || []).map((d) => `DNS:${d}`), ...(c.spec.ipAddresses || []).map((i) => `IP:${i}`)];
    const eku = (c.spec.usages || []).map((u) => ({ "server auth": "serverAuth", "client auth": "clientAuth" })[u]).filter(Boolean);
    fs.writeFileSync(path.join(dir, `${name}.ext`), [sans.length ? `subjectAltName=${sans.join(",")}` : "",
      eku.length ? `extendedKeyUsage=${eku.join(",")}` : ""].filter(Boolean).join("\n") + "\n");
    ssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`]);
    const files = { "tls.crt": fs.readFileSync(path.join(dir, `${name}.crt`)),
                    "tls.key": fs.readFileSync(path.join(dir, `${name}.key`)), "ca.crt": ca };
    secrets.set(c.spec.secretName, files);
    if (!(c.spec.dnsNames || []).length) {
      operatorTls = Object.fromEntries(Object.keys(files).map((k) => [k, path.join(dir, `${name}.${k}`)]));
      for (const [k, data] of Object.entries(files)) fs.writeFileSync(operatorTls[k], data);
    }
  }
  console.log(`cert-manager: ${certificates.length} Certificates issued by one CA`);
}
const created = [];  // host mount points this test made
const children = [];
function cleanup() {
  for (const c of children) { try { process.kill(-c.pid, "SIGKILL"); } catch {} }
  for (const p of pods) {
    try { run("ip", ["netns", "delete", p.ns], { stdio: "ignore" }); } catch {}
    fs.rmSync(`/etc/netns/${p.ns}`, { recursive: true, force: true });
  }
  try { run("ip", ["link", "delete", "rlpbr0"], { stdio: "ignore" }); } catch {}
  for (const d of created.reverse()) { try { fs.rmdirSync(d); } catch {} }
}
process.on("exit", cleanup);
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => process.exit(1));

// The network: a bridge in this namespace, one veth per pod.
cleanup();
run("ip", ["link", "add", "rlpbr0", "type", "bridge"]);
run("ip", ["addr", "add", "10.213.0.1/24", "dev", "rlpbr0"]);
run("ip", ["link", "set", "rlpbr0", "up"]);
pods.forEach((p, i) => {
  run("ip", ["netns", "add", p.ns]);
  run("ip", ["link", "add", `rlpv${i}`, "type", "veth", "peer", "name", `rlpp${i}`]);
  run("ip", ["link", "set", `rlpv${i}`, "master", "rlpbr0", "up"]);
  run("ip", ["link", "set", `rlpp${i}`, "netns", p.ns]);
  run("ip", ["-n", p.ns, "link", "set", `rlpp${i}`, "name", "eth0"]);
  run("ip", ["-n", p.ns, "addr", "add", `${p.ip}/24`, "dev", "eth0"]);
  run("ip", ["-n", p.ns, "link", "set", "eth0", "up"]);
  run("ip", ["-n", p.ns, "link", "set", "lo", "up"]);
  fs.mkdirSync(`/etc/netns/${p.ns}`, { recursive: true });
  fs.writeFileSync(`/etc/netns/${p.ns}/hosts`, ["127.0.0.1 localhost", `${p.ip} ${p.name}`,
    ...hosts.map(([ip, n]) => `${ip} ${n}`)].join("\n") + "\n");
});

// NetworkPolicies, as nftables rules in the selected pods' namespaces: with
// Ingress, only the listed sources and ports (plus the node, where kubelet
// probes come from); with Egress, only the listed destinations. Replies to
// allowed connections pass.
const podIps = (selector) => pods.filter((p) => matches((selector || {}).matchLabels,
  p.template.metadata.labels || {})).map((p) => p.ip);
function ruleLines(rules, dir) {
  const out = [];
  for (const r of rules || []) {
    const peers = r[dir === "in" ? "from" : "to"];
    const ips = peers === undefined ? null : peers.flatMap((x) => (x.podSelector ? podIps(x.podSelector) : []));
    if (ips !== null && ips.length === 0) continue;
    const addr = ips === null ? "" : `ip ${dir === "in" ? "saddr" : "daddr"} { ${ips.join(", ")} } `;
    const ports = (r.ports || []).map((x) => x.port);
    out.push(`${addr}${ports.length ? `tcp dport { ${ports.join(", ")} } ` : ""}accept`);
  }
  return out;
}
const policed = new Map();  // pod -> description
for (const np of byKind("NetworkPolicy")) {
  const types = np.spec.policyTypes || ["Ingress"];
  for (const p of pods) {
    if (!matches(np.spec.podSelector.matchLabels, p.template.metadata.labels || {})) continue;
    const chains = [];
    if (types.includes("Ingress")) {
      chains.push(["input", "iif lo accept", "ip saddr 10.213.0.1 accept", ...ruleLines(np.spec.ingress, "in")]);
    }
    if (types.includes("Egress")) {
      chains.push(["output", "oif lo accept", ...ruleLines(np.spec.egress, "out")]);
    }
    const rules = chains.map(([hook, ...lines]) => `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy drop;\n    ct state established,related accept\n${lines.map((l) => `    ${l}\n`).join("")}  }\n`).join("");
    run("ip", ["netns", "exec", p.ns, "nft", "-f", "-"], { input: `table inet rlpost_policy {\n${rules}}\n` });
    policed.set(p, types.join("+"));
  }
}

function mountPoint(dir) {
  const missing = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) { fs.mkdirSync(d); created.push(d); }
}

// setpriv's arguments for the pod's container user (runAsUser/runAsGroup,
// the container's over the pod's); none when the manifest names no user.
function podUser(p) {
  const psc = p.template.spec.securityContext || {};
  const csc = p.template.spec.containers[0].securityContext || {};
  const uid = csc.runAsUser ?? psc.runAsUser, gid = csc.runAsGroup ?? psc.runAsGroup ?? uid;
  return uid !== undefined ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups"] : [];
}

// Start every pod's container.
for (const p of pods) {
  const spec = p.template.spec;
  const c = spec.containers[0];
  const root = path.join(work, p.name);
  // The image's layout: the binaries at /opt/rlpost/bin, the plugins at
  // /opt/rlpost/lib/rlpost (bound first: a volume at /tmp may hide where
  // they were built).
  mountPoint("/opt/rlpost/bin");
  mountPoint("/opt/rlpost/lib/rlpost");
  const binds = [`mount --bind ${opt.bin} /opt/rlpost/bin`,
                 `mount --bind ${path.join(opt.bin, "..", "lib")} /opt/rlpost/lib/rlpost`];
  const volumeBinds = [];  // [mountPath, command]
  for (const m of c.volumeMounts || []) {
    const v = spec.volumes.find((x) => x.name === m.name);
    const dir = path.join(root, "volumes", m.name);
    fs.mkdirSync(dir, { recursive: true });
    if (v.configMap) {
      for (const [k, text] of Object.entries(configMaps.get(v.configMap.name))) fs.writeFileSync(path.join(dir, k), text);
    } else if (v.secret) {
      // A Secret the overlay leaves to the operator (docs/deploy.md: rlpost-auth
      // with a token) is made here the way the operator would.
      if (!secrets.has(v.secret.secretName)) {
        secrets.set(v.secret.secretName, { token: Buffer.from(`netns-${process.pid}-${Date.now()}\n`) });
      }
      for (const [k, data] of Object.entries(secrets.get(v.secret.secretName))) fs.writeFileSync(path.join(dir, k), data);
    }
    fs.chmodSync(dir, 0o1777);
    mountPoint(m.mountPath);
    volumeBinds.push([m.mountPath, `mount --bind ${dir} ${m.mountPath}`]);
  }
  // A volume over a directory that holds this test's files (the pods' /tmp
  // over os.tmpdir()) is bound last, so that it hides no other volume's source.
  const hides = ([at]) => (work + "/").startsWith(at.replace(/\/?$/, "/"));
  binds.push(...volumeBinds.filter((b) => !hides(b)).map(([, b]) => b),
             ...volumeBinds.filter(hides).map(([, b]) => b));
  // The container's security context: a read-only root filesystem (the
  // volumes above stay writable), and its user.
  if ((c.securityContext || {}).readOnlyRootFilesystem) binds.push("mount -o remount,bind,ro /");
  const user = podUser(p).map((a) => `${a} `).join("");
  const env = { PATH: "/opt/rlpost/bin:/usr/bin:/bin", HOSTNAME: p.name, ...p.env };
  for (const e of c.env || []) env[e.name] = e.value;
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const quote = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;
  const script = [...binds, `exec ${user}env -i ${envArgs.map(quote).join(" ")} ${[...c.command, ...(c.args || [])].map(quote).join(" ")}`].join(" && ");
  const log = fs.openSync(path.join(work, `${p.name}.log`), "w");
  // The pod's own hostname (UTS namespace), as Kubernetes sets it.
  const child = spawn("ip", ["netns", "exec", p.ns, "unshare", "--mount", "--uts", "--propagation",
                             "private", "sh", "-c", `hostname ${p.name} && ${script}`],
                      { stdio: ["ignore", log, log], detached: true });
  children.push(child);
  p.child = child;
  console.log(`pod ${p.name} (${p.ip}${p.dns.length ? ", " + p.dns.join(" ") : ""}): ${c.command.join(" ")} ${(c.args || []).join(" ")}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const controller = pods.find((p) => p.template.spec.containers[0].command[0] === "rlpost-controller");
const grpcPort = controller.template.spec.containers[0].ports.find((x) => x.name === "grpc").containerPort;
const addr = `${controller.ip}:${grpcPort}`;
const tokenDir = path.join(work, controller.name, "volumes", "auth");
const tlsServers = (controller.template.spec.containers[0].args || []).some((a) => a.startsWith("--tls-cert"));
if (tlsServers && !operatorTls) {
  console.log("FAIL: the servers use TLS but no Certificate gives rlctl a client certificate");
  process.exit(1);
}
// rlctl as an operator runs it: from the node, or with TLS through a
// port-forward (localhost in the pod's network namespace; the certificates
// name localhost) with the operator's client certificate.
const operator = (target, args, tls = tlsServers) => {
  const flags = tls ? ["--tls-ca", operatorTls["ca.crt"], "--tls-cert", operatorTls["tls.crt"], "--tls-key", operatorTls["tls.key"]] : [];
  const argv = [`${opt.bin}/rlctl`, ...args, "--addr", tls || target.local ? `localhost:${grpcPort}` : `${target.ip}:${grpcPort}`, ...flags];
  const [cmd, ...rest] = tls || target.local ? ["ip", "netns", "exec", target.ns, ...argv] : argv;
  try {
    return { code: 0, out: run(cmd, rest, { stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    return { code: e.status, out: (e.stdout || "") + (e.stderr || "") };
  }
};
const rlctl = (args, timeout = 10) =>
  operator(controller, ["--token-file", path.join(tokenDir, "token"), "--timeout", String(timeout), ...args]);
function fail(why) {
  console.log(`FAIL: ${why}`);
  for (const p of pods) console.log(`---- ${p.name}\n` + fs.readFileSync(path.join(work, `${p.name}.log`), "utf8").slice(-3000));
  process.exit(1);
}

// Readiness, as the probes see it: a gRPC probe's port accepts connections
// (the learner ranks only once their rendezvous is complete); an exec probe's
// command succeeds, run inside the pod (its mount and network namespaces,
// its user), as kubelet runs it.
const execProbe = (p) => {
  const c = p.template.spec.containers[0];
  try {
    run("nsenter", ["-t", String(p.child.pid), "-m", "-n", ...podUser(p), "env", "-i",
                    "PATH=/opt/rlpost/bin:/usr/bin:/bin", ...c.readinessProbe.exec.command], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
};
const accepts = (host, port) => new Promise((resolve) => {
  const sock = net.connect({ host, port, timeout: 1000 });
  sock.on("connect", () => { sock.destroy(); resolve(true); });
  sock.on("error", () => resolve(false));
  sock.on("timeout", () => { sock.destroy(); resolve(false); });
});

(async () => {
  for (const p of pods) {
    const port = p.template.spec.containers[0].ports.find((x) => x.name === "grpc").containerPort;
    let ready = false;
    for (let i = 0; i < 900 && !ready; ++i) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) fail(`pod ${p.name} exited`);
      const probe = p.template.spec.containers[0].readinessProbe || {};
      ready = probe.exec ? execProbe(p) : await accepts(p.ip, port);
      if (!ready) await sleep(200);
    }
    if (!ready) fail(`pod ${p.name} never listened on ${p.ip}:${port}`);
  }
  let up = false;
  for (let i = 0; i < 300 && !up; ++i) {
    up = rlctl(["status"], 2).code === 0;
    if (!up) await sleep(200);
  }
  if (!up) fail(`the controller never answered at ${addr}`);
  if (tlsServers) {
    // TLS is really on: a plaintext caller from the node gets no answer,
    // and neither does one without a client certificate.
    const plain = operator(controller, ["--timeout", "3", "health"], false);
    if (plain.code !== 3) fail(`rlctl health over plaintext got exit ${plain.code}: ${plain.out}`);
    const oneWay = operator({ ...controller, local: true }, ["--timeout", "3", "health", "--tls-ca", operatorTls["ca.crt"]], false);
    if (oneWay.code !== 3) fail(`rlctl health without a client certificate got exit ${oneWay.code}: ${oneWay.out}`);
    console.log("mutual TLS: plaintext and certificate-less callers get no answer");
  }
  // One RL step of the configured run, shrunk.
  const runConfig = path.join(work, "run.yaml");
  fs.writeFileSync(runConfig, Object.values(configMaps.values().next().value)[0]);
  const submit = rlctl(["run", "submit", "--config", runConfig, "run.name=netns", "sft.steps=2",
    "sft.batch_size=4", "rl.steps=1", "rl.prompts_per_step=4", "rl.group_size=4", "eval.size=8",
    "task.train_size=40", "task.heldout_size=8"], 30);
  if (submit.code !== 0) fail(`rlctl run submit: ${submit.out}`);
  let state = "";
  for (let i = 0; i < 1500; ++i) {
    const s = rlctl(["-o", "json", "status"], 5);
    if (s.code === 0) {
      state = JSON.parse(s.out).state || "";
      if (/FINISHED|FAILED/.test(state)) break;
    }
    await sleep(200);
  }
  if (!/FINISHED/.test(state)) fail(`the run ended ${state || "never"}`);
  const runDir = path.join(work, controller.name, "volumes", "runs", "runs", "netns");
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, "summary.json"), "utf8"));
  if (summary.steps !== 1) fail(`summary.json: ${JSON.stringify(summary)}`);
  const audit = execFileSync(`${opt.bin}/rlpost`, ["audit", runDir], { encoding: "utf8" });
  if (!audit.includes("samples: 16, lost: 0, duplicated: 0")) fail(`audit: ${audit}`);
  // The code verifier works as deployed (its user, read-only root, /tmp
  // volume, no egress): a passing and a failing Python program, judged in
  // its sandbox, asked from the node.
  for (const v of pods.filter((q) => q.template.spec.containers[0].command[0] === "rlpost-verifier")) {
    const items = path.join(work, "code.jsonl");
    const program = (answer) => JSON.stringify({ kind: "code", language: "python",
      code: `print(int(input()) * ${answer})`, tests: [{ stdin: "21", expected_stdout: "42" }] });
    fs.writeFileSync(items, [program(2), program(3)].map((line, i) =>
      line.replace("{", `{"id": "c${i}", `)).join("\n") + "\n");
    const judged = operator(v, ["verify", "--input", items, "--timeout", "60"]);
    if (judged.code !== 0) fail(`rlctl verify against ${v.name}: ${judged.out}`);
    const out = judged.out;
    const verdicts = out.trim().split("\n").map((l) => JSON.parse(l).verdict);
    if (verdicts[0] !== "accepted" || verdicts[1] !== "wrong_answer") {
      fail(`${v.name} judged code ${JSON.stringify(verdicts)} (want accepted, wrong_answer): ${out}`);
    }
    console.log(`${v.name} judges code in its sandbox: ${verdicts.join(", ")}`);
  }
  // The policies hold: a policed pod reaches nothing it may not, and is
  // reached by nothing that may not reach it (the run above used the allowed
  // paths).
  const connects = (from, ip, port) => {
    try {
      run("ip", ["netns", "exec", from.ns, "timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${ip}/${port}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  for (const [p, types] of policed) {
    const other = pods.find((q) => q !== p && q !== controller && !policed.has(q));
    if (types.includes("Egress") && connects(p, controller.ip, grpcPort)) {
      fail(`${p.name} reached the controller despite its NetworkPolicy (no egress)`);
    }
    if (types.includes("Ingress") && other && connects(other, p.ip, grpcPort)) {
      fail(`${other.name} reached ${p.name}:${grpcPort} despite its NetworkPolicy`);
    }
    if (types.includes("Ingress") && !connects(controller, p.ip, grpcPort)) {
      fail(`the controller cannot reach ${p.name}:${grpcPort}`);
    }
    console.log(`NetworkPolicy holds for ${p.name} (${types})`);
  }
  console.log(`run netns FINISHED over the manifests' addresses: ${audit.trim().split("\n")[0]}`);
  process.exit(0);
})();
