"""A gRPC server and client for the gateway's end-to-end tests, on grpcio with raw bytes
(no generated code): service test.Echo with Say (unary: echoes the request and the x-user-id
it saw, sets a trailer), Count (server streaming: n messages) and Slow (answers after 3 s).

  echo.py serve             listens on 127.0.0.1:0, prints the port, serves until killed
  echo.py call ADDR CASE    calls through ADDR and prints one JSON line with the outcome
"""

import json
import sys
import time
from concurrent import futures

import grpc


def say(request, context):
    user = dict(context.invocation_metadata()).get("x-user-id", "-")
    context.set_trailing_metadata((("x-trailer", "done"),))
    return request + b" from " + user.encode()


def count(request, context):
    for i in range(int(request.decode())):
        yield str(i).encode()


def slow(request, context):
    time.sleep(3)
    return b"late"


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def call(addr, case):
    channel = grpc.insecure_channel(addr)
    metadata = []
    if case.startswith("say:"):
        metadata = [("authorization", "Bearer " + case[4:])]
        case = "say"
    try:
        if case == "say":
            answer, call = channel.unary_unary("/test.Echo/Say").with_call(
                b"hello", metadata=metadata, timeout=10
            )
            out = {"code": "OK", "answer": answer.decode(), "trailers": dict(call.trailing_metadata())}
        elif case == "count":
            answers = channel.unary_stream("/test.Echo/Count")(b"5", timeout=10)
            out = {"code": "OK", "answers": [a.decode() for a in answers]}
        elif case == "missing":
            channel.unary_unary("/other.Svc/Nope")(b"x", timeout=10)
            out = {"code": "OK"}
        else:
            raise SystemExit("unknown case " + case)
    except grpc.RpcError as e:
        out = {"code": e.code().name, "details": e.details()}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3])
