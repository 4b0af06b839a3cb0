"""Drives web's entrypoint (consul-dns, several consul servers) against two fake consul agents
on 127.0.0.1 and 127.0.0.2: the first stops answering in time, the replica moves to the second,
and the first turns out to have kept the registration. Prints one JSON line of what each
fake agent holds after each step. Usage: python3 left_behind.py ENTRYPOINT_PY"""

import http.server
import importlib.util
import json
import sys
import threading
import time
import urllib.parse

SERVERS = ["127.0.0.1", "127.0.0.2"]
SERVICE_ID = "replica-1"


class Fake:
    """One consul agent: the service IDs it holds, and whether it answers late (3 s, past the
    entrypoint's 2 s timeout) while still doing what it was asked. Each also answers for the
    catalog: every fake's registrations, each at its fake's address (a consul server's node
    address), filtered by the one expression the entrypoint sends."""

    all = {}

    def __init__(self, address, port):
        self.held = set()
        self.slow = False
        fake = self
        Fake.all[address] = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def late(self):
                # A slow agent does what it was asked after the client gave up.
                if fake.slow:
                    time.sleep(3)

            def answer(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                self.late()
                if self.path.startswith("/v1/catalog/service/"):
                    path, _, query = self.path.partition("?")
                    wanted = urllib.parse.parse_qs(query)["filter"][0]
                    entries = [
                        {"Node": f"consul-{address}", "Address": address,
                         "ServiceName": path.rsplit("/", 1)[-1], "ServiceID": service}
                        for address, other in sorted(Fake.all.items())
                        for service in sorted(other.held)
                        if wanted == f'ServiceID == "{service}"'
                    ]
                    body = json.dumps(entries).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                service = self.path.rsplit("/", 1)[-1]
                self.answer(200 if service in fake.held else 404)

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self.late()
                if self.path == "/v1/agent/service/register":
                    fake.held.add(json.loads(body)["ID"])
                    self.answer(200)
                elif self.path.startswith("/v1/agent/service/deregister/"):
                    service = self.path.rsplit("/", 1)[-1]
                    if service in fake.held:
                        fake.held.discard(service)
                        self.answer(200)
                    else:
                        # What consul 1.8.7 answers for a service it does not hold.
                        body = f'Unknown service {{"{service}" {{}}}}'.encode()
                        self.send_response(500)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                else:
                    self.answer(400)

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main():
    spec = importlib.util.spec_from_file_location("entrypoint", sys.argv[1])
    ep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ep)
    # One port number on both addresses, as every consul server listens on 8500.
    first = Fake(SERVERS[0], 0)
    port = first.server.server_address[1]
    fakes = {SERVERS[0]: first, SERVERS[1]: Fake(SERVERS[1], port)}
    ep.CONSUL_PORT = port
    ep.Agent.servers = staticmethod(lambda: list(SERVERS))
    ep.own_address = lambda: "10.9.9.9"
    ep.healthy = lambda address, service_id: True
    ep.log = lambda message: print(f"[entrypoint] {message}", file=sys.stderr)
    ep.AGENT.address = SERVERS[0]

    def held():
        return {address: sorted(fake.held) for address, fake in fakes.items()}

    steps = []
    ep.register(SERVICE_ID, [])
    steps.append(("registered", held()))
    fakes[SERVERS[0]].slow = True
    moved = not ep.registered(SERVICE_ID)
    ep.register(SERVICE_ID, [])
    time.sleep(1.5)  # the slow agent finishes what it was asked late
    steps.append(("moved" if moved else "stayed", held()))
    ep.clean_left_behind(SERVICE_ID)
    time.sleep(1.5)
    steps.append(("cleaned while slow", held()))
    fakes[SERVERS[0]].slow = False
    ep.clean_left_behind(SERVICE_ID)
    steps.append(("cleaned", held()))
    # The replica's name now picks the slow server: `spread` tries to move there, its one
    # registration times out and lands late, and the replica stays where it is. The late one
    # is remembered and removed once that server answers (here the name picks the agent again,
    # so no further move hides it).
    fakes[SERVERS[0]].slow = True
    ep.Agent.pick = classmethod(lambda cls: SERVERS[0])
    ep.spread(SERVICE_ID, [])
    time.sleep(1.5)
    steps.append(("spread timed out", held()))
    fakes[SERVERS[0]].slow = False
    ep.Agent.pick = classmethod(lambda cls: SERVERS[1])
    ep.clean_left_behind(SERVICE_ID)
    steps.append(("spread cleaned", held()))
    # A server gone from DNS is forgotten without a request.
    ep.LEFT_BEHIND.add("127.0.0.9")
    ep.clean_left_behind(SERVICE_ID)
    steps.append(("left", sorted(ep.LEFT_BEHIND)))
    # A second registration the replica does not know of (it forgot the server, or the server
    # took a registration after answering "unknown" to its removal): what it remembers cannot
    # remove it; the catalog's sweep does, and leaves the agent's.
    fakes[SERVERS[0]].held.add(SERVICE_ID)
    ep.LEFT_BEHIND.clear()
    ep.clean_left_behind(SERVICE_ID)
    steps.append(("unknown second", held()))
    ep.remove_second_registrations(SERVICE_ID)
    steps.append(("swept", held()))
    print(json.dumps({"agent": ep.AGENT.address, "steps": steps}))


if __name__ == "__main__":
    main()
