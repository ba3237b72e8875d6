// Drives `vlm-ros mcp` with the official TypeScript MCP SDK: a second client implementation,
// independent of the Python SDK the other tests use (tests/test_mcp_ts_client.py runs it).
//
//   node client.mjs -- <server command> [server args...]
//
// Prints ONE JSON object on stdout; exits non-zero with the reason on stderr on any failure.
// The server's own stderr is inherited, so a failing run shows both sides.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

// The first calls load the node's detector; the SDK's 60 s default could cut a slow CI host off.
const REQUEST = { timeout: 110_000, resetTimeoutOnProgress: true };

// The Client keeps the negotiated version to itself; it hands it to a transport that asks for
// it (HTTP transports need it in a header), so a stdio transport that asks is how to see it.
class RecordingStdioTransport extends StdioClientTransport {
  setProtocolVersion(version) {
    this.protocolVersion = version;
  }
}

function serverCommand(argv) {
  const dashes = argv.indexOf('--');
  const command = dashes < 0 ? [] : argv.slice(dashes + 1);
  if (command.length === 0) {
    throw new Error('usage: node client.mjs -- <server command> [args...]');
  }
  return command;
}

function textOf(result) {
  const block = result.content.find((c) => c.type === 'text');
  if (block === undefined) {
    throw new Error(`no text content in ${JSON.stringify(result.content)}`);
  }
  return block.text;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main() {
  const [command, ...args] = serverCommand(process.argv);
  const transport = new RecordingStdioTransport({
    command,
    args,
    // Without `env` the SDK passes only HOME, LOGNAME, PATH, SHELL, TERM and USER: the server
    // would lose ROS_DOMAIN_ID, the built interfaces (AMENT_PREFIX_PATH, PYTHONPATH) and find
    // no node. The whole environment, as the test set it, is what a user's shell gives.
    env: process.env,
    stderr: 'inherit',
  });
  const client = new Client({ name: 'vlm-ros-ts-test', version: '0.1.0' });
  await client.connect(transport, REQUEST);
  const serverPid = transport.pid;
  const out = {};
  try {
    out.tools = (await client.listTools(undefined, REQUEST)).tools.map((t) => t.name);

    const ground = await client.callTool(
      { name: 'ground', arguments: { command: 'grab the red cup' } }, undefined, REQUEST);
    out.ground = JSON.parse(textOf(ground));
    out.groundIsError = Boolean(ground.isError);
    // The same answer twice over (text for older clients, structuredContent for newer ones).
    out.groundStructuredMatches =
      JSON.stringify(ground.structuredContent) === JSON.stringify(out.ground);

    // The SDK does not check arguments against inputSchema before sending: the server must.
    const bad = await client.callTool(
      { name: 'instruct', arguments: { command: 'grab the red cup', speed: 3 } }, undefined,
      REQUEST);
    out.bad = { isError: Boolean(bad.isError), text: textOf(bad) };

    const snapshot = await client.callTool({ name: 'snapshot', arguments: {} }, undefined,
                                           REQUEST);
    const image = snapshot.content.find((c) => c.type === 'image');
    out.snapshot = {
      types: snapshot.content.map((c) => c.type),
      isError: Boolean(snapshot.isError),
      mimeType: image?.mimeType ?? null,
      bytes: image === undefined ? 0 : Buffer.from(image.data, 'base64').length,
    };

    const status = await client.readResource({ uri: 'vlm-ros://status' }, REQUEST);
    out.status = JSON.parse(status.contents[0].text);
    out.protocolVersion = transport.protocolVersion ?? null;
    out.serverInfo = client.getServerVersion() ?? null;
  } finally {
    // Closes the server's stdin (it should exit on its own), then SIGTERM / SIGKILL after 2 s
    // each: no server outlives this script.
    await client.close();
  }
  // The transport resolves close() after its kill timeouts even if the process lingers: say so.
  const deadline = Date.now() + 5000;
  while (serverPid !== null && alive(serverPid) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  out.server = { pid: serverPid, exited: serverPid === null || !alive(serverPid) };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`mcp ts client: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
