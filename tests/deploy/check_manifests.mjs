// Offline checks of rendered Kubernetes manifests (kustomize output):
//   node check_manifests.mjs --bin-dir DIR OVERLAY.yaml...
// 1. Every object validates against the Kubernetes schemas of the npm package
//    kubernetes-models.
// 2. Policy: every container has resource requests and a memory limit,
//    readiness and liveness probes, a locked-down security context; pods run
//    as non-root; images are pinned (not latest); workloads carry the
//    recommended app.kubernetes.io labels and a metrics port; the verifier's
//    NetworkPolicy allows no egress.
// 3. The manifests match the binaries: every --flag a container passes is one
//    its binary lists in --help, every environment variable it sets is one
//    the binary's --help names ($NAME), and every file a flag points into is
//    mounted.
// 4. GPUs match the run config: a rollout worker or learner rank with an
//    nvidia.com/gpu limit runs with rollout.device / learner.device cuda (from
//    its key=value arguments or the mounted ConfigMap), and one set to cuda
//    has a GPU (the binary refuses to start without one).
// 5. TLS: a container serving TLS (--tls-cert) takes it from a Secret that a
//    cert-manager Certificate of the same render issues; that certificate
//    names every host its peers dial (the controller's --rollout, --verifier
//    and --learner targets) and localhost where an exec probe dials it; its
//    probes are not native gRPC probes (they speak plaintext); an exec probe's
//    rlctl flags are ones `rlctl health --help` lists.
// Prints one line per problem and exits 1 if there is any.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parse, parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
let binDir = "";
const files = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === "--bin-dir") binDir = args[++i];
  else files.push(args[i]);
}
if (!binDir || files.length === 0) {
  console.error("usage: node check_manifests.mjs --bin-dir DIR RENDERED.yaml...");
  process.exit(2);
}

const problems = [];
const report = (where, what) => problems.push(`${where}: ${what}`);

function modelFor(apiVersion, kind) {
  const group = apiVersion.split("/")[0];
  const path = group.endsWith("cert-manager.io")
    ? `@kubernetes-models/cert-manager/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
  try {
    return require(path)[kind];
  } catch {
    return undefined;
  }
}

const RECOMMENDED = [
  "app.kubernetes.io/name",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/component",
  "app.kubernetes.io/part-of",
  "app.kubernetes.io/managed-by",
];
const WORKLOADS = new Set(["Deployment", "StatefulSet", "Job", "DaemonSet"]);
const helpCache = new Map();

// The binary's --help text; "" (reported) when --help does not succeed.
function help(binary, where, sub = []) {
  const key = [binary, ...sub].join(" ");
  if (!helpCache.has(key)) {
    let text = "";
    try {
      text = execFileSync(`${binDir}/${binary}`, [...sub, "--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      report(where, `${key} --help failed (exit ${e.status}): ${String(e.stderr || e.message).split("\n")[0]}`);
    }
    helpCache.set(key, text);
  }
  return helpCache.get(key);
}

// The device a rollout or learner container runs its model on: a key=value
// argument, else the run config in a ConfigMap the pod mounts, else "cpu".
function deviceOf(c, pod, configMaps) {
  const key = c.command[0] === "rlpost-rollout" ? "rollout.device" : "learner.device";
  for (const a of c.args || []) if (a.startsWith(`${key}=`)) return [key, a.slice(key.length + 1)];
  for (const v of pod.volumes || []) {
    const data = v.configMap && configMaps.get(v.configMap.name);
    for (const text of Object.values(data || {})) {
      let doc = {};
      try {
        doc = parse(text) || {};
      } catch {
        continue;
      }
      const [section, name] = key.split(".");
      const value = (doc[section] || {})[name] ?? doc[key];
      if (value !== undefined) return [key, String(value)];
    }
  }
  return [key, "cpu"];
}

function checkGpu(where, c, pod, configMaps) {
  const binary = (c.command || [])[0];
  if (binary !== "rlpost-rollout" && binary !== "rlpost-learner") return;
  const limits = (c.resources || {}).limits || {};
  const gpus = Number(limits["nvidia.com/gpu"] || 0);
  const [key, device] = deviceOf(c, pod, configMaps);
  if (gpus > 0 && !device.startsWith("cuda")) {
    report(where, `has ${gpus} nvidia.com/gpu but ${key} is ${device}: the GPU would sit idle`);
  }
  if (gpus === 0 && device.startsWith("cuda")) {
    report(where, `${key} is ${device} but no nvidia.com/gpu limit: ${binary} would exit 2`);
  }
}

// The value of --NAME in a container's args ("" when absent).
function flag(c, name) {
  const a = (c.args || []).find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : "";
}

// The Certificate whose Secret a pod mounts at the directory of `file`.
function certificateFor(c, pod, file, certificates) {
  const mount = (c.volumeMounts || []).find((m) => file.startsWith(m.mountPath + "/"));
  const volume = mount && (pod.volumes || []).find((v) => v.name === mount.name);
  const secret = volume && volume.secret && volume.secret.secretName;
  return { secret, certificate: certificates.find((x) => x.spec.secretName === secret) };
}

// Hosts a controller dials: its --rollout list, --verifier and --learner.
function dialedHosts(c) {
  return ["rollout", "verifier", "learner"].flatMap((n) => flag(c, n).split(",")).filter(Boolean)
    .map((a) => a.replace(/^dns:\/\/\//, "").replace(/:\d+$/, ""));
}

// The workload serving `host`: "NAME-i.SUB" is a pod of a StatefulSet or an
// Indexed Job with that subdomain; a bare name is a Service (its selector).
function servingWorkload(host, workloads, services) {
  const dotted = /^(.+)-(\d+)\.([^.]+)$/.exec(host);
  if (dotted) {
    return workloads.find((w) => w.metadata.name === dotted[1] &&
      (w.spec.serviceName === dotted[3] || w.spec.template.spec.subdomain === dotted[3]));
  }
  const svc = services.find((x) => x.metadata.name === host.split(".")[0]);
  if (!svc) return undefined;
  return workloads.find((w) => Object.entries(svc.spec.selector || {}).every(
    ([k, v]) => (w.spec.template.metadata.labels || {})[k] === v));
}

function checkTls(where, c, pod, all) {
  const cert = flag(c, "tls-cert");
  const probes = ["readinessProbe", "livenessProbe"].filter((p) => c[p]);
  for (const p of probes) {
    const command = (c[p].exec || {}).command || [];
    if (command[0] === "rlctl") {
      const text = help("rlctl", where, command.slice(1, 2));
      for (const a of command.filter((x) => x.startsWith("--"))) {
        if (text && !text.includes(a.split("=")[0])) report(where, `${p}: rlctl ${command[1]} accepts no flag ${a}`);
      }
    }
  }
  if (!cert) return;
  for (const p of probes) {
    if (c[p].grpc) report(where, `${p} is a gRPC probe but the server requires TLS (kubelet's gRPC probes speak plaintext)`);
  }
  const { secret, certificate } = certificateFor(c, pod, cert, all.certificates);
  const probeDialsLocalhost = probes.some((p) => ((c[p].exec || {}).command || []).some((x) => /^localhost:/.test(x)));
  if (!certificate) {
    report(where, `--tls-cert comes from Secret ${secret || "(none mounted)"}, which no Certificate issues`);
  } else if (probeDialsLocalhost && !(certificate.spec.dnsNames || []).includes("localhost")) {
    report(where, `its exec probe dials localhost but Certificate ${certificate.metadata.name} does not name localhost`);
  }
  for (const host of dialedHosts(c)) {
    const w = servingWorkload(host, all.workloads, all.services);
    if (!w) continue;
    const wc = w.spec.template.spec.containers[0];
    const served = flag(wc, "tls-cert");
    if (!served) {
      report(where, `dials ${host} with TLS but ${w.kind}/${w.metadata.name} serves plaintext`);
      continue;
    }
    const theirs = certificateFor(wc, w.spec.template.spec, served, all.certificates).certificate;
    if (theirs && !(theirs.spec.dnsNames || []).includes(host)) {
      report(where, `dials ${host} but Certificate ${theirs.metadata.name} does not name it`);
    }
  }
}

function checkContainer(where, c, volumes) {
  const r = c.resources || {};
  for (const res of ["cpu", "memory"]) {
    if (!r.requests || !r.requests[res]) report(where, `no resources.requests.${res}`);
  }
  if (!r.limits || !r.limits.memory) report(where, "no resources.limits.memory");
  for (const probe of ["readinessProbe", "livenessProbe"]) {
    if (!c[probe]) report(where, `no ${probe}`);
  }
  const sc = c.securityContext || {};
  if (sc.allowPrivilegeEscalation !== false) report(where, "allowPrivilegeEscalation is not false");
  if (!sc.capabilities || !(sc.capabilities.drop || []).includes("ALL")) {
    report(where, "capabilities do not drop ALL");
  }
  if (sc.privileged) report(where, "privileged");
  if (sc.readOnlyRootFilesystem !== true) report(where, "root filesystem is not read-only");
  const image = c.image || "";
  const tag = image.includes("@") ? "digest" : image.split("/").pop().split(":")[1];
  if (!tag) report(where, `image ${image} has no tag`);
  if (tag === "latest") report(where, `image ${image} uses latest`);
  if (!(c.ports || []).some((p) => p.name === "metrics")) report(where, "no metrics port");

  // The binary's flags and environment.
  const binary = (c.command || [])[0];
  if (!binary || !binary.startsWith("rlpost")) {
    report(where, "command[0] is not an rlpost binary");
    return;
  }
  const text = help(binary, where);
  if (!text) return;
  if (!text.includes("usage:")) {
    report(where, `${binary} --help printed no usage`);
    return;
  }
  const known = new Set([...text.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]));
  const mounts = (c.volumeMounts || []).map((m) => m.mountPath);
  for (const a of c.args || []) {
    if (!a.startsWith("--")) continue;
    const name = a.slice(2).split("=")[0];
    if (!known.has(name)) report(where, `${binary} accepts no flag --${name}`);
    const value = a.includes("=") ? a.slice(a.indexOf("=") + 1) : "";
    if (value.startsWith("/") && !mounts.some((m) => value.startsWith(m + "/"))) {
      report(where, `--${name}=${value} points outside every volume mount`);
    }
  }
  for (const e of c.env || []) {
    if (!text.includes(`$${e.name}`)) report(where, `${binary} reads no environment variable ${e.name}`);
  }
  for (const m of c.volumeMounts || []) {
    if (!volumes.has(m.name)) report(where, `mounts undefined volume ${m.name}`);
  }
}

// The API server treats a null field as unset (old kustomize releases write
// e.g. volumeClaimTemplates: null); so does this check.
function pruneNulls(v) {
  if (Array.isArray(v)) return v.map(pruneNulls);
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = pruneNulls(x);
    return out;
  }
  return v;
}

const objects = [];
const configMaps = new Map();
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) report(file, `YAML: ${doc.errors[0].message}`);
    const obj = pruneNulls(doc.toJS());
    if (obj) objects.push({ file, obj });
    if (obj && obj.kind === "ConfigMap") configMaps.set(obj.metadata.name, obj.data || {});
  }
}

const all = {
  certificates: objects.map(({ obj }) => obj).filter((o) => o.kind === "Certificate"),
  workloads: objects.map(({ obj }) => obj).filter((o) => WORKLOADS.has(o.kind)),
  services: objects.map(({ obj }) => obj).filter((o) => o.kind === "Service"),
};
for (const { file, obj } of objects) {
  const where = `${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    report(where, `no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    report(where, `schema: ${e.message.split("\n").slice(0, 3).join(" ")}`);
  }
  const labels = (obj.metadata && obj.metadata.labels) || {};
  if (obj.kind !== "Namespace") {
    for (const l of RECOMMENDED) if (!labels[l]) report(where, `no label ${l}`);
  }
  if (WORKLOADS.has(obj.kind)) {
    if (!labels["app.kubernetes.io/version"]) report(where, "no label app.kubernetes.io/version");
    const pod = obj.spec.template.spec;
    const psc = pod.securityContext || {};
    if (psc.runAsNonRoot !== true) report(where, "pod does not set runAsNonRoot");
    if (!psc.seccompProfile) report(where, "pod sets no seccompProfile");
    const volumes = new Set((pod.volumes || []).map((v) => v.name));
    for (const c of [...(pod.initContainers || []), ...pod.containers]) {
      checkContainer(`${where} container ${c.name}`, c, volumes);
      checkGpu(`${where} container ${c.name}`, c, pod, configMaps);
      checkTls(`${where} container ${c.name}`, c, pod, all);
    }
  }
  if (obj.kind === "NetworkPolicy" && obj.metadata.name === "rlpost-verifier") {
    if (!(obj.spec.policyTypes || []).includes("Egress")) report(where, "does not restrict egress");
    if ((obj.spec.egress || []).length !== 0) report(where, "allows some egress");
  }
}
const kinds = new Set(objects.map(({ obj }) => obj.kind));
for (const k of ["Deployment", "StatefulSet", "Job", "Service", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"]) {
  if (!kinds.has(k)) report(files.join(","), `no ${k} rendered`);
}
const verifierPolicy = objects.some(
  ({ obj }) => obj.kind === "NetworkPolicy" && obj.metadata.name === "rlpost-verifier");
if (!verifierPolicy) report(files.join(","), "no NetworkPolicy rlpost-verifier");

if (problems.length > 0) {
  for (const p of problems) console.log(`FAIL ${p}`);
  process.exit(1);
}
console.log(`OK ${objects.length} objects in ${files.join(", ")}: schemas, policy, flags, GPUs, TLS`);
