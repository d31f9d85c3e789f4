"""protoc-gen-grpc_python: the gRPC Python stub generator of grpcio-tools, as a protoc plugin.

grpcio-tools (PyPI) compiles the gRPC Python generator into its bundled protoc
(`python -m grpc_tools.protoc --grpc_python_out=...`) but ships no standalone plugin executable,
and buf runs only real plugins (or protoc's own built-in generators). This adapter is that plugin:
it reads buf's CodeGeneratorRequest on stdin, hands the request's descriptors to grpcio-tools'
protoc (--descriptor_set_in, in this process), and answers a CodeGeneratorResponse with the files
it wrote. The stubs so come from the very grpcio-tools release pinned in requirements.txt, which
also pins the grpcio and protobuf runtimes they are checked against.

buf.gen.yaml: `local: [python3, test/clients/python/protoc_gen_grpc_python.py]`.
"""

import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory(prefix="protoc-gen-grpc_python-") as tmp:
        descriptors = os.path.join(tmp, "descriptors.binpb")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        with open(descriptors, "wb") as f:
            f.write(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        target = f"{request.parameter}:{out}" if request.parameter else out
        # protoc writes its diagnostics to stderr; stdout stays ours for the response.
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"--descriptor_set_in={descriptors}",
                f"--grpc_python_out={target}",
                *request.file_to_generate,
            ]
        )
        if code != 0:
            response.error = f"grpc_tools.protoc --grpc_python_out exited with {code}"
        else:
            for root, _dirs, files in os.walk(out):
                for name in sorted(files):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        response.file.add(name=os.path.relpath(path, out), content=f.read())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
