// Envoy's side of ext_authz, for zpk's gateway tests: a Go program that calls
// envoy.service.auth.v3.Authorization/Check with go-control-plane's generated types (the same
// messages Envoy sends), shares no code with zpk, and reports what it got back as JSON lines.
//
//	envoy-go -addr 127.0.0.1:9090 -token T < cases.json     one JSON line per case
//	envoy-go -addr 127.0.0.1:9090 -list-services             server reflection v1: service names
//	envoy-go -compare-descriptors set.binpb                  zpk's vendored subset vs go-control-plane
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Case is one Check call: the downstream request Envoy would describe.
type Case struct {
	Name              string            `json:"name"`
	Path              string            `json:"path"`
	Method            string            `json:"method"`
	Headers           map[string]string `json:"headers"`
	RawHeaders        bool              `json:"raw_headers"` // send header_map (encode_raw_headers) instead of headers
	ContextExtensions map[string]string `json:"context_extensions"`
	SourceIP          string            `json:"source_ip"` // "-": no source address
	RequestID         string            `json:"request_id"`
	Token             *string           `json:"token"` // overrides -token (empty string: none)
}

// Result is what came back, flattened for the test's assertions.
type Result struct {
	Name            string            `json:"name"`
	GrpcCode        string            `json:"grpc_code"`
	GrpcMessage     string            `json:"grpc_message,omitempty"`
	StatusCode      int32             `json:"status_code"`
	Kind            string            `json:"kind"` // ok | denied | none
	Headers         map[string]string `json:"headers,omitempty"`
	AppendActions   map[string]string `json:"append_actions,omitempty"`
	HeadersToRemove []string          `json:"headers_to_remove,omitempty"`
	ResponseHeaders map[string]string `json:"response_headers,omitempty"`
	HTTPStatus      int32             `json:"http_status,omitempty"`
	Body            string            `json:"body,omitempty"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "zpk GRPC_PORT")
	token := flag.String("token", "", "zpk INTERNAL_TOKEN, sent as authorization: Bearer (Envoy's initial_metadata)")
	list := flag.Bool("list-services", false, "list services by server reflection v1")
	compare := flag.String("compare-descriptors", "", "FileDescriptorSet (buf build -o) to compare with go-control-plane")
	flag.Parse()

	if *compare != "" {
		os.Exit(compareDescriptors(*compare))
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	if *list {
		listServices(conn)
		return
	}
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fail("reading cases from stdin: %v", err)
	}
	client := authv3.NewAuthorizationClient(conn)
	out := json.NewEncoder(os.Stdout)
	for _, c := range cases {
		if err := out.Encode(run(client, c, *token)); err != nil {
			fail("write: %v", err)
		}
	}
}

func run(client authv3.AuthorizationClient, c Case, token string) Result {
	if c.Token != nil {
		token = *c.Token
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	method := c.Method
	if method == "" {
		method = "GET"
	}
	httpReq := &authv3.AttributeContext_HttpRequest{Id: c.RequestID, Method: method, Path: c.Path, Host: "api.example.com", Scheme: "http", Protocol: "HTTP/1.1", Size: -1}
	if c.RawHeaders {
		hm := &corev3.HeaderMap{}
		for k, v := range c.Headers {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		httpReq.HeaderMap = hm
	} else {
		httpReq.Headers = c.Headers
	}
	src := c.SourceIP
	if src == "" {
		src = "203.0.113.7"
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: src, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request:           &authv3.AttributeContext_Request{Http: httpReq},
		ContextExtensions: c.ContextExtensions,
	}}
	if src == "-" {
		// No source address at all, as an Envoy without a downstream address would send.
		req.Attributes.Source = nil
	}
	res, err := client.Check(ctx, req)
	r := Result{Name: c.Name, Kind: "none"}
	if err != nil {
		st := status.Convert(err)
		r.GrpcCode = st.Code().String()
		r.GrpcMessage = st.Message()
		return r
	}
	r.GrpcCode = "OK"
	r.StatusCode = res.GetStatus().GetCode()
	if ok := res.GetOkResponse(); ok != nil {
		r.Kind = "ok"
		r.Headers, r.AppendActions = headerMap(ok.GetHeaders())
		r.HeadersToRemove = ok.GetHeadersToRemove()
		sort.Strings(r.HeadersToRemove)
		r.ResponseHeaders, _ = headerMap(ok.GetResponseHeadersToAdd())
	}
	if d := res.GetDeniedResponse(); d != nil {
		r.Kind = "denied"
		r.HTTPStatus = int32(d.GetStatus().GetCode())
		r.Headers, r.AppendActions = headerMap(d.GetHeaders())
		r.Body = d.GetBody()
	}
	return r
}

func headerMap(opts []*corev3.HeaderValueOption) (map[string]string, map[string]string) {
	h := map[string]string{}
	a := map[string]string{}
	for _, o := range opts {
		h[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
		a[o.GetHeader().GetKey()] = o.GetAppendAction().String()
	}
	return h, a
}

func listServices(conn *grpc.ClientConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		fail("reflection: %v", err)
	}
	ask := func(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		if err := stream.Send(req); err != nil {
			fail("reflection send: %v", err)
		}
		res, err := stream.Recv()
		if err != nil {
			fail("reflection recv: %v", err)
		}
		return res
	}
	res := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	for _, s := range res.GetListServicesResponse().GetService() {
		fmt.Println("service", s.GetName())
	}
	// The descriptor of Check, as grpcurl would fetch it to call the method.
	fd := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "envoy.service.auth.v3.Authorization"}})
	for _, b := range fd.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var f descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(b, &f); err != nil {
			fail("descriptor: %v", err)
		}
		fmt.Println("file", f.GetName())
	}
}

// compareDescriptors checks that every message and enum in zpk's vendored files has the same
// fields (name, number, type, label) as go-control-plane's: the wire compatibility of the subset.
func compareDescriptors(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("read: %v", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		fail("parse: %v", err)
	}
	bad, checked := 0, 0
	var walk func(prefix string, msgs []*descriptorpb.DescriptorProto, enums []*descriptorpb.EnumDescriptorProto)
	walk = func(prefix string, msgs []*descriptorpb.DescriptorProto, enums []*descriptorpb.EnumDescriptorProto) {
		for _, e := range enums {
			name := prefix + "." + e.GetName()
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				fmt.Printf("MISSING enum %s in go-control-plane\n", name)
				bad++
				continue
			}
			ed := d.(protoreflect.EnumDescriptor)
			for _, v := range e.GetValue() {
				checked++
				theirs := ed.Values().ByName(protoreflect.Name(v.GetName()))
				if theirs == nil || int32(theirs.Number()) != v.GetNumber() {
					fmt.Printf("DIFF %s.%s = %d\n", name, v.GetName(), v.GetNumber())
					bad++
				}
			}
		}
		for _, m := range msgs {
			name := prefix + "." + m.GetName()
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				fmt.Printf("MISSING message %s in go-control-plane\n", name)
				bad++
				continue
			}
			md := d.(protoreflect.MessageDescriptor)
			for _, f := range m.GetField() {
				checked++
				theirs := md.Fields().ByNumber(protoreflect.FieldNumber(f.GetNumber()))
				if theirs == nil || string(theirs.Name()) != f.GetName() || int32(theirs.Kind()) != int32(f.GetType()) || int32(theirs.Cardinality()) != int32(f.GetLabel()) {
					fmt.Printf("DIFF %s.%s = %d\n", name, f.GetName(), f.GetNumber())
					bad++
					continue
				}
				if f.GetTypeName() != "" {
					var tn string
					if theirs.Message() != nil {
						tn = "." + string(theirs.Message().FullName())
					} else if theirs.Enum() != nil {
						tn = "." + string(theirs.Enum().FullName())
					}
					if tn != f.GetTypeName() {
						fmt.Printf("DIFF type %s.%s: %s vs %s\n", name, f.GetName(), f.GetTypeName(), tn)
						bad++
					}
				}
			}
			walk(name, m.GetNestedType(), m.GetEnumType())
		}
	}
	for _, f := range set.GetFile() {
		if len(f.GetPackage()) < 6 || (f.GetPackage()[:6] != "envoy." && f.GetPackage() != "google.rpc") {
			continue
		}
		walk(f.GetPackage(), f.GetMessageType(), f.GetEnumType())
		for _, s := range f.GetService() {
			for _, m := range s.GetMethod() {
				checked++
				d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(f.GetPackage() + "." + s.GetName() + "." + m.GetName()))
				if err != nil {
					fmt.Printf("MISSING method %s.%s\n", s.GetName(), m.GetName())
					bad++
					continue
				}
				md := d.(protoreflect.MethodDescriptor)
				if "."+string(md.Input().FullName()) != m.GetInputType() || "."+string(md.Output().FullName()) != m.GetOutputType() {
					fmt.Printf("DIFF method %s.%s\n", s.GetName(), m.GetName())
					bad++
				}
			}
		}
	}
	fmt.Printf("compared %d fields/values/methods, %d differences\n", checked, bad)
	if bad > 0 || checked == 0 {
		return 1
	}
	return 0
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "envoy-go: "+format+"\n", args...)
	os.Exit(2)
}
