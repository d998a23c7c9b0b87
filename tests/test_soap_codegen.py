"""The frozen WSDLs in ``wsdl/`` are accepted by real SOAP code generators.

The issue asks: "JAX-WS ``wsimport`` must accept it without warnings and gSOAP
``wsdl2h`` must build a client from it". For each of the four frozen WSDLs this
module runs

* JAX-WS RI ``wsimport`` (Debian package ``jaxws``), which generates *and compiles*
  the Java client; any warning or error fails the test, and the port type,
  service and request-wrapper classes must exist as source and as compiled class;
* gSOAP ``wsdl2h`` + ``soapcpp2 -C -j -x`` (Debian packages ``gsoap``,
  ``libgsoap-dev``), then ``g++`` links the generated C++ proxy with
  ``libgsoap++`` and the program sends one ``isExistingUser`` request to a
  loopback socket of this test, which checks the SOAP version and payload of
  what the generated client actually put on the wire.

The document ``?wsdl`` serves (``{S}.wsdl``: both bindings and WSO2's two ports)
goes through ``wsimport -extension`` (both port getters, the one SOAP 1.2 notice)
and through gSOAP with ``wsdl2h -N`` (a proxy per binding, what gSOAP asks for when
a WSDL has several), whose clients are built and then run against a live gateway at
the address of each port (``test_gsoap_clients_of_both_ports_call_the_gateway``).

The tools are installed by ``.ci/run``; a missing tool fails the test (it is
never skipped). ``GATEWAY_CODEGEN_WSDL_DIR`` points the module at another
directory holding the same file names (used to try it on variants).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import ADMIN_CLIENT, ADMIN_USER

ROOT = Path(__file__).resolve().parents[1]
WSDL_DIR = Path(os.environ.get("GATEWAY_CODEGEN_WSDL_DIR", ROOT / "wsdl"))

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

# (file name, SOAP version, WSO2 service name). The service and port type names,
# and the target namespace (hence the Java package), are WSO2's: a WSDL that is
# wire-compatible with WSO2's RemoteUserStoreManagerService uses the same ones.
WSDLS = [
    ("RemoteUserStoreManagerService.soap11.wsdl", "1.1", "RemoteUserStoreManagerService"),
    ("RemoteUserStoreManagerService.soap12.wsdl", "1.2", "RemoteUserStoreManagerService"),
    ("RemoteUserStoreManagerServiceV2.soap11.wsdl", "1.1", "RemoteUserStoreManagerServiceV2"),
    ("RemoteUserStoreManagerServiceV2.soap12.wsdl", "1.2", "RemoteUserStoreManagerServiceV2"),
]
# the documents ?wsdl serves: both bindings, WSO2's two ports
BOTH = [
    ("RemoteUserStoreManagerService.wsdl", "both", "RemoteUserStoreManagerService"),
    ("RemoteUserStoreManagerServiceV2.wsdl", "both", "RemoteUserStoreManagerServiceV2"),
]
# targetNamespace http://service.ws.um.carbon.wso2.org, mapped by JAXB
JAVA_PACKAGE_DIR = Path("org/wso2/carbon/um/ws/service")

# The one wsimport warning a SOAP 1.2 WSDL cannot avoid: JAX-WS RI 2.x prints it,
# unconditionally, for every SOAP 1.2 port it processes in -extension mode
# (WSDLModeler: SOAP 1.2 is "non-standard" for the JAX-WS 2.x WSDL mapping, and
# without -extension the port is ignored with another warning). It is allowed
# exactly once (the file has one port) in the SOAP 1.2 files, and nowhere else.
WSIMPORT_SOAP12_NOTICE = re.compile(
    r'^\[WARNING\] SOAP port "[^"]+": uses a non-standard SOAP 1\.2 binding\.$'
)

GSOAP_IMPORT_DIRS = [Path("/usr/share/gsoap/import"), Path("/usr/local/share/gsoap/import")]

PROBLEM = re.compile(r"warn|error|fixme", re.IGNORECASE)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` not found on PATH: .ci/run must install it "
            f"(apt-get install -y --no-install-recommends {package})"
        )
    return path


def _wsdl(name: str) -> Path:
    path = WSDL_DIR / name
    assert path.is_file(), f"frozen WSDL {path} is missing"
    return path


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict | None = None):
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "LC_ALL": "C", **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr


def _problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if PROBLEM.search(line)]


# ---------------------------------------------------------------- JAX-WS wsimport


@pytest.mark.parametrize(("name", "version", "service"), WSDLS + BOTH,
                         ids=[w[0] for w in WSDLS + BOTH])
def test_wsimport_accepts_without_warnings(tmp_path, name, version, service):
    wsimport = _tool("wsimport", "jaxws")
    _tool("javac", "default-jdk-headless")
    wsdl = _wsdl(name)
    out = tmp_path / "java"
    out.mkdir()
    # -keep -s: keep the sources; without -Xnocompile wsimport also compiles them.
    # SOAP 1.2 bindings are only processed with -extension (JAX-WS 2.x).
    cmd = [wsimport, "-keep", "-d", str(out), "-s", str(out)]
    if version != "1.1":
        cmd.append("-extension")
    cmd.append(str(wsdl))
    # English messages whatever the machine's locale, so "[WARNING]" is matched
    rc, output = _run(cmd, tmp_path, 300,
                      env={"WSIMPORT_OPTS": "-Duser.language=en -Duser.country=US"})
    shown = f"$ {' '.join(cmd)}\n{output}"
    assert rc == 0, f"wsimport failed (exit {rc}):\n{shown}"

    problems = _problem_lines(output)
    if version != "1.1":
        notices = [line for line in problems if WSIMPORT_SOAP12_NOTICE.match(line)]
        assert len(notices) == 1, f"wsimport did not see exactly one SOAP 1.2 port:\n{shown}"
        problems = [line for line in problems if line not in notices]
    assert problems == [], f"wsimport reported warnings/errors:\n{shown}"

    pkg = out / JAVA_PACKAGE_DIR
    port_type = f"{service}PortType"
    for cls in (port_type, service, "IsExistingUser", "IsExistingUserResponse", "AddUser"):
        assert (pkg / f"{cls}.java").is_file(), (
            f"wsimport generated no {JAVA_PACKAGE_DIR}/{cls}.java; generated: "
            f"{sorted(str(p.relative_to(out)) for p in out.rglob('*.java'))}\n{shown}")
    for cls in (port_type, service):
        assert (pkg / f"{cls}.class").is_file(), f"{cls}.java was not compiled:\n{shown}"
    ports = re.findall(rf"public {port_type} get(\w+)\(\)", (pkg / f"{service}.java").read_text())
    expected_ports = {"1.1": ["HttpsSoap11Endpoint"], "1.2": ["HttpsSoap12Endpoint"],
                      "both": ["HttpsSoap11Endpoint", "HttpsSoap12Endpoint"]}[version]
    assert ports == [service + p for p in expected_ports], ports
    sei = (pkg / f"{port_type}.java").read_text()
    for op in ("isExistingUser(", "addUser(", "authenticate("):
        assert op in sei, f"port type interface has no method {op}...)"


# ---------------------------------------------------------------------- gSOAP

CLIENT_MAIN = """\
#include <cstdio>
#include "{header}"
#include "{nsmap}"
int main(int argc, char **argv) {{
  if (argc != 2) return 2;
  {proxy} proxy;
  proxy.soap->connect_timeout = 10;
  proxy.soap->send_timeout = 10;
  proxy.soap->recv_timeout = 10;
  {request} req;
  {response} resp;
  int rc = proxy.isExistingUser(argv[1], NULL, &req, resp);
  std::printf("isExistingUser returned %d\\n", rc);
  return 0;
}}
"""


def _capture_one_request(server: socket.socket, captured: list[bytes]) -> None:
    """Accept one HTTP request, keep its bytes, answer 500 and close (bounded in time)."""
    try:
        conn, _ = server.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(10)
        data = b""
        try:
            while len(data) < 1_000_000:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
                    if not m and body.endswith(b"0\r\n\r\n"):  # chunked, last chunk
                        break
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        captured.append(data)


@pytest.mark.parametrize(("name", "version", "service"), WSDLS, ids=[w[0] for w in WSDLS])
def test_gsoap_builds_client(tmp_path, name, version, service):
    wsdl2h = _tool("wsdl2h", "gsoap")
    soapcpp2 = _tool("soapcpp2", "gsoap")
    gxx = _tool("g++", "g++")
    pkg_config = _tool("pkg-config", "pkg-config")
    import_dir = next((d for d in GSOAP_IMPORT_DIRS if (d / "stlvector.h").is_file()), None)
    assert import_dir is not None, (
        f"gSOAP import directory not found in {GSOAP_IMPORT_DIRS}: .ci/run must install gsoap")
    rc, flags = _run([pkg_config, "--cflags", "--libs", "gsoap++"], tmp_path, 30)
    assert rc == 0, f"pkg-config knows no gsoap++: .ci/run must install libgsoap-dev\n{flags}"
    wsdl = _wsdl(name)

    # wsdl2h: any line mentioning a warning or an error fails. What it prints on a
    # clean run is benign: the banner, "Reading type definitions from type map ...",
    # "Reading/Done reading '<wsdl>'", "Saving x.h" and the "To finalize code
    # generation, execute: soapcpp2 ..." hint. Its warnings all name real defects
    # for a client: several bindings merged into one service, a non-SOAP (HTTP)
    # binding ignored, "could not find the type for element", "no message part".
    rc, output = _run([wsdl2h, "-o", "x.h", str(wsdl)], tmp_path, 120)
    assert rc == 0, f"wsdl2h failed (exit {rc}):\n{output}"
    assert _problem_lines(output) == [], f"wsdl2h reported problems:\n{output}"
    # unresolved QNames do not always reach the console: they are written into
    # the header as "@todo !FIXME! @warning Undefined QName ..."
    header = (tmp_path / "x.h").read_text(errors="replace")
    fixme = [line for line in header.splitlines() if "!FIXME!" in line or "Undefined QName" in line]
    assert fixme == [], "wsdl2h left unresolved definitions in x.h:\n" + "\n".join(fixme[:20])

    # client side only (-C), C++ proxy classes (-j), no sample XML files (-x)
    rc, output = _run([soapcpp2, "-C", "-j", "-x", f"-I{import_dir}", "x.h"], tmp_path, 120)
    assert rc == 0 and "Compilation successful" in output, (
        f"soapcpp2 failed (exit {rc}):\n{output}")
    assert _problem_lines(output) == [], f"soapcpp2 reported problems:\n{output}"

    proxies = sorted(tmp_path.glob("soap*Proxy.h"))
    assert len(proxies) == 1, f"expected one client proxy header, got {proxies}"
    proxy_h = proxies[0].read_text()
    for op in ("isExistingUser(", "addUser(", "authenticate("):
        assert f" {op}" in proxy_h, f"{proxies[0].name} has no operation {op}...)"
    m = re.search(r"virtual int isExistingUser\(const char \*soap_endpoint_url, "
                  r"const char \*soap_action, (\w+) \*\w+, (\w+) &\w+\)", proxy_h)
    assert m, f"no request-response isExistingUser in {proxies[0].name}"
    request_type, response_type = m.groups()

    # wsdl2h picks the client's SOAP version from the WSDL: a SOAP 1.1 WSDL that so
    # much as declares the WSDL SOAP 1.2 binding namespace gets a SOAP 1.2 client
    nsmaps = sorted(tmp_path.glob("*.nsmap"))
    assert len(nsmaps) == 1, f"expected one namespace table, got {nsmaps}"
    env_ns = re.search(r'\{\s*"SOAP-ENV",\s*"([^"]+)"', nsmaps[0].read_text())
    expected_env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    assert env_ns and env_ns.group(1) == expected_env, (
        f"gSOAP client speaks {env_ns and env_ns.group(1)}, expected SOAP {version} "
        f"({expected_env}); a SOAP 1.1 WSDL must not declare "
        "xmlns:*=\"http://schemas.xmlsoap.org/wsdl/soap12/\"")

    # compile and link the generated client against libgsoap++
    proxy_class = proxies[0].stem.removeprefix("soap")
    (tmp_path / "main.cpp").write_text(CLIENT_MAIN.format(
        header=proxies[0].name, nsmap=nsmaps[0].name, proxy=proxy_class,
        request=request_type, response=response_type))
    cmd = [gxx, "-O0", "-o", "client", "main.cpp", "soapC.cpp", proxies[0].with_suffix(".cpp").name,
           *flags.split()]
    rc, output = _run(cmd, tmp_path, 300)
    assert rc == 0, f"g++ could not build the gSOAP client:\n$ {' '.join(cmd)}\n{output}"

    # the built client puts a well-formed request of the right SOAP version on the wire
    captured: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(30)
        port = server.getsockname()[1]
        thread = threading.Thread(target=_capture_one_request, args=(server, captured))
        thread.start()
        try:
            rc, output = _run([str(tmp_path / "client"), f"http://127.0.0.1:{port}/services/x"],
                              tmp_path, 60)
        finally:
            thread.join(40)
    assert rc == 0, f"gSOAP client crashed (exit {rc}):\n{output}"
    assert captured, f"gSOAP client sent nothing:\n{output}"
    request = captured[0].decode("utf-8", "replace")
    assert request.startswith("POST /services/x HTTP/1."), request[:2000]
    assert expected_env in request, f"request is not a SOAP {version} envelope:\n{request[:4000]}"
    assert "http://service.ws.um.carbon.wso2.org" in request and "isExistingUser" in request, (
        f"request carries no isExistingUser element of WSO2's namespace:\n{request[:4000]}")
    content_type = "text/xml" if version == "1.1" else "application/soap+xml"
    assert re.search(rf"(?im)^content-type:\s*{re.escape(content_type)}", request), (
        f"request Content-Type is not {content_type}:\n{request[:2000]}")


# ------------------------------------------- gSOAP, both ports, against a live gateway

LIVE_CLIENT_MAIN = """\
#include <cstdio>
#include <string>
#include "{header}"
#include "{nsmap}"
int main(int argc, char **argv) {{
  if (argc != 5) return 2;  // endpoint URL, user, password, the name asked about
  {proxy} proxy;
  proxy.soap->connect_timeout = 10;
  proxy.soap->send_timeout = 10;
  proxy.soap->recv_timeout = 10;
  proxy.soap->userid = argv[2];  // HTTP Basic
  proxy.soap->passwd = argv[3];
  {request} req;
  {response} resp;
  std::string name(argv[4]);
  req.userName = &name;
  if (proxy.isExistingUser(argv[1], NULL, &req, resp) != SOAP_OK) {{
    proxy.soap_stream_fault(std::cerr);
    return 3;
  }}
  std::printf("isExistingUser=%s\\n",
              resp.return_ == NULL ? "null" : (*resp.return_ ? "true" : "false"));
  return 0;
}}
"""


def _build_gsoap_clients(tmp_path: Path, wsdl: Path) -> dict[str, Path]:
    """wsdl2h -N (a proxy per binding), soapcpp2, g++: binding name -> client program.
    Any warning or error of a tool fails."""
    wsdl2h = _tool("wsdl2h", "gsoap")
    soapcpp2 = _tool("soapcpp2", "gsoap")
    gxx = _tool("g++", "g++")
    pkg_config = _tool("pkg-config", "pkg-config")
    import_dir = next((d for d in GSOAP_IMPORT_DIRS if (d / "stlvector.h").is_file()), None)
    assert import_dir is not None, f"gSOAP import directory not found in {GSOAP_IMPORT_DIRS}"
    rc, flags = _run([pkg_config, "--cflags", "--libs", "gsoap++"], tmp_path, 30)
    assert rc == 0, f"pkg-config knows no gsoap++: .ci/run must install libgsoap-dev\n{flags}"
    # -N: "use name for service prefixes to produce a service for each binding"; without
    # it wsdl2h warns that it merged the two bindings into one service
    rc, output = _run([wsdl2h, "-Nrusm", "-o", "x.h", str(wsdl)], tmp_path, 120)
    assert rc == 0 and _problem_lines(output) == [], f"wsdl2h (exit {rc}):\n{output}"
    header = (tmp_path / "x.h").read_text(errors="replace")
    assert "!FIXME!" not in header and "Undefined QName" not in header
    rc, output = _run([soapcpp2, "-C", "-j", "-x", f"-I{import_dir}", "x.h"], tmp_path, 120)
    assert rc == 0 and "Compilation successful" in output, f"soapcpp2 (exit {rc}):\n{output}"
    assert _problem_lines(output) == [], f"soapcpp2 reported problems:\n{output}"
    rc, output = _run([gxx, "-O0", "-c", "soapC.cpp", *flags.split()], tmp_path, 600)
    assert rc == 0, f"g++ soapC.cpp:\n{output}"
    proxies = sorted(tmp_path.glob("soap*Proxy.h"))
    clients = {}
    for proxy_h in proxies:
        binding = proxy_h.stem.removeprefix("soap").removesuffix("Proxy")
        text = proxy_h.read_text()
        m = re.search(r"virtual int isExistingUser\(const char \*soap_endpoint_url, "
                      r"const char \*soap_action, (\w+) \*\w+, (\w+) &\w+\)", text)
        assert m, f"no request-response isExistingUser in {proxy_h.name}"
        main = tmp_path / f"main_{binding}.cpp"
        main.write_text(LIVE_CLIENT_MAIN.format(
            header=proxy_h.name, nsmap=f"{binding}.nsmap", proxy=proxy_h.stem.removeprefix("soap"),
            request=m.group(1), response=m.group(2)))
        program = tmp_path / f"client_{binding}"
        cmd = [gxx, "-O0", "-o", str(program), main.name, "soapC.o",
               proxy_h.with_suffix(".cpp").name, *flags.split()]
        rc, output = _run(cmd, tmp_path, 600)
        assert rc == 0, f"g++ could not build the {binding} client:\n{output}"
        clients[binding] = program
    return clients


@pytest.mark.parametrize(("name", "version", "service"), BOTH, ids=[w[0] for w in BOTH])
async def test_gsoap_clients_of_both_ports_call_the_gateway(gateway, tmp_path, name, version,
                                                            service):
    clients = await asyncio.to_thread(_build_gsoap_clients, tmp_path, _wsdl(name))
    assert sorted(clients) == [f"{service}Soap11Binding", f"{service}Soap12Binding"]
    base = f"http://{gateway.server.host}:{gateway.server.port}/services/"
    for binding, program in clients.items():
        port = binding.replace("Soap1", "HttpsSoap1").replace("Binding", "Endpoint")
        url = f"{base}{service}.{port}"  # the address the WSDL publishes for that port
        for user, expected in ((ADMIN_USER[0], "true"), ("nobody-here", "false")):
            proc = await asyncio.create_subprocess_exec(
                str(program), url, *ADMIN_CLIENT, user, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
            assert proc.returncode == 0, (binding, out, err)
            assert out.decode().strip() == f"isExistingUser={expected}", (binding, out, err)
        # with a wrong password the generated client gets the gateway's fault, not a result
        proc = await asyncio.create_subprocess_exec(
            str(program), url, ADMIN_CLIENT[0], "wrong-secret", ADMIN_USER[0], cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 3 and b"isExistingUser=" not in out, (binding, out, err)
