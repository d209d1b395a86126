// A real prediction server for the tests, on 127.0.0.1 only, for one data set (absenteeism by
// default; startServer("penguins") for a penguins one, its variables PENGUINS_*).
//
// ABSENTEEISM_SERVER_ADDRESS=host:port  use a server someone else started (pytest does that) and
//                                       leave it running;
// otherwise                             start `python -m feature_service serve` on a free port with
//                                       ABSENTEEISM_CONFIG (or a config the ETL job builds into a
//                                       temp dir from the data set's bundled sample data), stop it
//                                       afterwards.
// Python is $PYTHON, else the repo's .venv/bin/python, else python3.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..", "..");
const START_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 20_000;

export interface RunningServer {
  address: string;
  stop(): Promise<void>;
}

export function python(): string {
  if (process.env.PYTHON) return process.env.PYTHON;
  const venv = path.join(REPO_ROOT, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

export type DataSet = "absenteeism" | "penguins";

function buildConfig(dataSet: DataSet): { config: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${dataSet}-node-test-`));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(python(), ["-m", "etl_job", "run", "--dataset", dataSet, "--output-dir", dir], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    const name = execFileSync(python(), ["-c", "from absenteeism.config_io import CONFIG_FILE; print(CONFIG_FILE)"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    }).trim();
    return { config: path.join(dir, name), cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}

export async function startServer(dataSet: DataSet = "absenteeism"): Promise<RunningServer> {
  const prefix = dataSet.toUpperCase();
  const given = process.env[`${prefix}_SERVER_ADDRESS`];
  if (given) return { address: given, stop: async () => {} };

  let config = process.env[`${prefix}_CONFIG`];
  let cleanup = () => {};
  if (!config) ({ config, cleanup } = buildConfig(dataSet));
  const args = ["-m", "feature_service", "serve", "--config", config, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--insecure"];
  const child = spawn(python(), args, { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit); // never leave a server behind, even if the tests crash

  let port: number;
  try {
    port = await boundPort(child);
  } catch (error) {
    await stopChild(child);
    process.removeListener("exit", killOnExit);
    cleanup();
    throw error;
  }
  return {
    address: `127.0.0.1:${port}`,
    stop: async () => {
      await stopChild(child);
      process.removeListener("exit", killOnExit);
      cleanup();
    },
  };
}

/** The port from the server's JSON "serving" log line on stderr. */
function boundPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const lines = readline.createInterface({ input: child.stderr! });
    const timer = setTimeout(() => fail(new Error(`server did not report its port in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const onExit = (code: number | null) => fail(new Error(`server exited (${code}) before serving`));
    function fail(error: Error): void {
      clearTimeout(timer);
      child.removeListener("exit", onExit);
      reject(new Error(`${error.message}\n--- server stderr ---\n${seen.slice(-20).join("\n")}`));
    }
    child.once("exit", onExit);
    lines.on("line", (line) => {
      seen.push(line);
      let entry: { event?: string; port?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.event === "serving" && typeof entry.port === "number") {
        clearTimeout(timer);
        child.removeListener("exit", onExit);
        // keep draining stderr so that the server never blocks on a full pipe
        lines.removeAllListeners("line");
        lines.on("line", () => {});
        resolve(entry.port);
      }
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
