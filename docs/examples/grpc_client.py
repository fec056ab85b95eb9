#!/usr/bin/python3
"""A minimal control plane: restores a dump through the agent's gRPC API
(mastodon.restore.v1.RestoreAgentService) and follows it to its end.

Stubs generated from the project's proto/ with Debian's protoc and gRPC
plugin (docs/fleet.md); runtime: Debian's python3-grpcio and python3-protobuf.

  restore_client.py SOCKET SOURCE DATABASE REQUEST_ID
Exit 0 when the restore succeeded, 1 otherwise.
"""
import sys

import grpc
from google.protobuf import json_format
from mastodon.restore.v1 import agent_service_pb2 as api
from mastodon.restore.v1 import agent_service_pb2_grpc as api_grpc
from mastodon.restore.v1 import operation_pb2


def main():
    socket, source, database, request_id = sys.argv[1:5]
    # A TCP agent: grpc.secure_channel("host:port", grpc.ssl_channel_credentials(...))
    # and a bearer token in the call metadata ("authorization": "Bearer ...").
    agent = api_grpc.RestoreAgentServiceStub(grpc.insecure_channel("unix:" + socket))
    print("agent", agent.GetAgentInfo(api.GetAgentInfoRequest()).build.version)

    # A retry with the same request_id (after a lost answer, a controller
    # restart) returns the same operation instead of starting another.
    started = agent.StartRestore(api.StartRestoreRequest(
        request_id=request_id,
        options={"source": {"path": source}, "db_only": True, "target_db": database}))
    op_id = started.operation.id
    print("operation", op_id)

    # The event stream ends when the operation does; after a break (agent
    # restart) resume from the next sequence: nothing is missed.
    next_sequence = 1
    while True:
        try:
            for message in agent.WatchOperation(
                    api.WatchOperationRequest(id=op_id, from_sequence=next_sequence)):
                event = message.event
                next_sequence = event.sequence + 1
                print(event.sequence, operation_pb2.EventType.Name(event.type), event.step,
                      event.message)
            break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise

    operation = agent.GetOperation(api.GetOperationRequest(id=op_id)).operation
    print(json_format.MessageToJson(operation, preserving_proto_field_name=True))
    return 0 if operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
