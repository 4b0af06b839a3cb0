// Command ctmpl-render renders a consul-template template the way consul-template does, with
// Go's own text/template, against a fixed fixture catalog, so the static checks can give the
// results to `haproxy -c` without a consul-template binary or a Consul agent (none can be had
// offline).
//
// Usage: ctmpl-render [-containers FILE] TEMPLATE OUTDIR COUNT...
//
// For each COUNT it writes OUTDIR/haproxy-COUNT.cfg: TEMPLATE executed while the catalog holds
// what registrator registers for COUNT running web containers (passing), one still starting
// (critical) and one drained (maintenance), which consul-template's `service` leaves out.
//
// The web containers' labels and exposed ports, and any other containers on the same engine
// (another project's), come from FILE (JSON, see `containers`); without it, the web containers
// carry SERVICE_NAME=web and expose 5000/tcp.
//
// What is registrator's (fayrus/registrator, tag v9.0.6, run with -internal -explicit):
//   - internal/bridge/bridge.go add: one service per exposed port; a container that exposes
//     none is ignored ("no published ports"); with more than one port the container is a group;
//   - newService: the name is the `name` metadata, else (-explicit) the port is not
//     registered; in a group, a name that does not come from a SERVICE_<port>_ key gets
//     "-<port>" appended; the ID is "<hostname>:<container name>:<port>" (hostname
//     "registrator", as the compose file sets it) unless `id` is given; tags are the `tags`
//     metadata cut at commas; -internal registers the container's address and exposed port;
//   - internal/bridge/util.go serviceMetaData: SERVICE_<key> labels apply to every port,
//     SERVICE_<port>_<key> (and SERVICE_<port>_<proto>_<key>) to that port only and win.
//     Port ranges (SERVICE_<lo>-<hi>_<key>) and the environment are left out: provision uses
//     neither.
//
// What is consul-template's, and where it comes from (hashicorp/consul-template, template/ and
// dependency/):
//
//   - the template is parsed like template.Execute does it: text/template, delimiters {{ }},
//     option missingkey=error (our consul-template.hcl sets error_on_missing_key = true),
//     executed with nil data;
//
//   - `service` is serviceFunc + HealthServiceQuery: its arguments are joined with "|" and
//     parsed as "TAG.NAME?QUERY@DC~NEAR|FILTER"; no argument or an empty first one gives an
//     empty list; without a filter only passing instances are returned; each instance's
//     status is the aggregate of its checks (maintenance, then critical, then warning win over
//     passing); an empty service address falls back to the node's; tags are sorted; the list
//     is sorted by node, then ID, unless NEAR is given. The entries have HealthService's
//     fields (.Node, .NodeAddress, .Address, .ID, .Name, .Tags, .Status, .Port, ...).
//
//   - `regexMatch RE S` is template/funcs.go regexMatch: RE compiled with Go's regexp (an error
//     if it does not compile), then MatchString(S) (v0.42.1 and main of 2026-08; registered in
//     template/template.go's funcMap).
//
// Only `service` and `regexMatch` are defined. A template that calls any other consul-template
// function fails to parse ("function ... not defined"), so a blueprint that starts using one
// fails the check until the function is added here with its real semantics.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// HealthService is consul-template's dependency.HealthService, the element type `service`
// returns (Checks and Weights, Consul API types, are left out: the fixtures have no use for
// them, and a template that reads them fails with "can't evaluate field").
type HealthService struct {
	Node                string
	NodeID              string
	NodeAddress         string
	NodeTaggedAddresses map[string]string
	NodeMeta            map[string]string
	ServiceMeta         map[string]string
	Address             string
	ID                  string
	Name                string
	Tags                []string
	Status              string
	Port                int
}

// entry is one element of Consul's /v1/health/service/NAME answer, reduced to what
// consul-template reads from it.
type entry struct {
	node, nodeAddress string
	id, service       string
	address           string
	port              int
	tags              []string
	checks            []check
}

type check struct{ id, status string }

// The regular expression of dependency.HealthServiceQueryRe.
var queryRe = regexp.MustCompile(`\A` +
	`((?P<tag>[[:word:]=:\.\-\_]+)\.)?` +
	`(?P<name>[[:word:]\-\_]+)` +
	`(\?(?P<query>[[:word:]\-\_\=\&]+))?` +
	`(@(?P<dc>[[:word:]\.\-\_]+))?` +
	`(~(?P<near>[[:word:]\.\-\_]+))?` +
	`(\|(?P<filter>[[:word:]\,]+))?` +
	`\z`)

// container is one container as registrator reads it from `docker inspect`.
type container struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels"`
	Exposed []string          `json:"exposed"` // "5000/tcp"
}

// containers is the -containers FILE: the web containers' shape, and the others on the engine.
type containers struct {
	Web struct {
		// Prefix of the container names: "<prefix>-<i>".
		Prefix  string            `json:"prefix"`
		Labels  map[string]string `json:"labels"`
		Exposed []string          `json:"exposed"`
	} `json:"web"`
	Others []container `json:"others"`
}

func defaultContainers() containers {
	var c containers
	c.Web.Prefix = "hits-web"
	c.Web.Labels = map[string]string{"SERVICE_NAME": "web"}
	c.Web.Exposed = []string{"5000/tcp"}
	return c
}

// serviceMetaData is util.go's serviceMetaData on labels: the SERVICE_ keys for one port.
func serviceMetaData(labels map[string]string, port, proto string) (map[string]string, map[string]bool) {
	metadata := map[string]string{}
	fromPort := map[string]bool{}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, "SERVICE_") || labels[k] == "" {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, "SERVICE_"))
		if fromPort[key] {
			continue
		}
		portkey := strings.SplitN(key, "_", 2)
		if _, err := strconv.Atoi(portkey[0]); err == nil && len(portkey) > 1 {
			if portkey[0] != port {
				continue
			}
			protokey := strings.SplitN(portkey[1], "_", 2)
			if (protokey[0] == "tcp" || protokey[0] == "udp") && len(protokey) > 1 {
				if protokey[0] != proto {
					continue
				}
				metadata[protokey[1]] = labels[k]
				fromPort[protokey[1]] = true
			} else {
				metadata[portkey[1]] = labels[k]
				fromPort[portkey[1]] = true
			}
		} else if err != nil {
			metadata[key] = labels[k]
		}
	}
	return metadata, fromPort
}

// register is what registrator (-internal -explicit) puts in consul for one container whose
// service checks have `status`.
func register(c container, status string) []entry {
	var entries []entry
	isGroup := len(c.Exposed) > 1
	exposed := append([]string{}, c.Exposed...)
	sort.Strings(exposed)
	for _, e := range exposed {
		port, proto, _ := strings.Cut(e, "/")
		if proto == "" {
			proto = "tcp"
		}
		meta, fromPort := serviceMetaData(c.Labels, port, proto)
		if meta["ignore"] != "" {
			continue
		}
		name := meta["name"]
		if name == "" {
			continue // -explicit
		}
		if isGroup && !fromPort["name"] {
			name += "-" + port
		}
		id := "registrator:" + c.Name + ":" + port
		if meta["id"] != "" {
			id = meta["id"]
		}
		var tags []string
		if meta["tags"] != "" {
			tags = strings.Split(meta["tags"], ",")
		}
		number, _ := strconv.Atoi(port)
		own := check{"service:" + id, status}
		if status == "maintenance" {
			own = check{"_service_maintenance:" + id, "critical"}
		}
		entries = append(entries, entry{
			node:        "consul",
			nodeAddress: "172.18.0.2",
			id:          id,
			service:     name,
			address:     c.Address,
			port:        number,
			tags:        tags,
			checks:      []check{ok("serfHealth"), own},
		})
	}
	return entries
}

func ok(id string) check { return check{id, "passing"} }

// catalog is the fixture for one COUNT: what registrator registers for COUNT running web
// containers, listed out of order so the sorting is exercised, one replica still starting
// (critical) and one drained (service maintenance), which `service` must leave out, and the
// other containers of the engine (passing).
func catalog(count int, c containers) []entry {
	var all []entry
	web := func(i int, name, status string) {
		all = append(all, register(container{
			Name:    name,
			Address: fmt.Sprintf("172.18.0.%d", 10+i),
			Labels:  c.Web.Labels,
			Exposed: c.Web.Exposed,
		}, status)...)
	}
	for i := count; i >= 1; i-- {
		web(i, fmt.Sprintf("%s-%d", c.Web.Prefix, i), "passing")
	}
	web(count+1, fmt.Sprintf("%s-%d", c.Web.Prefix, count+1), "critical")
	web(count+2, c.Web.Prefix+"-drained", "maintenance")
	for _, other := range c.Others {
		all = append(all, register(other, "passing")...)
	}
	return all
}

// aggregatedStatus is api.HealthChecks.AggregatedStatus.
func aggregatedStatus(checks []check) string {
	var warning, critical, maintenance bool
	for _, c := range checks {
		if c.id == "_node_maintenance" || strings.HasPrefix(c.id, "_service_maintenance:") {
			maintenance = true
			continue
		}
		switch c.status {
		case "passing":
		case "warning":
			warning = true
		case "critical":
			critical = true
		default:
			return ""
		}
	}
	switch {
	case maintenance:
		return "maintenance"
	case critical:
		return "critical"
	case warning:
		return "warning"
	default: // passing, or no check at all
		return "passing"
	}
}

func serviceFunc(entries []entry) func(...string) ([]*HealthService, error) {
	return func(s ...string) ([]*HealthService, error) {
		result := []*HealthService{}
		if len(s) == 0 || s[0] == "" {
			return result, nil
		}
		q := strings.Join(s, "|")
		m := queryRe.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("health.service: invalid format: %q", q)
		}
		group := func(name string) string { return m[queryRe.SubexpIndex(name)] }
		filters := []string{"passing"}
		if f := group("filter"); f != "" {
			filters = nil
			for _, f := range strings.Split(f, ",") {
				switch f = strings.TrimSpace(f); f {
				case "any", "passing", "warning", "critical", "maintenance":
					filters = append(filters, f)
				case "":
				default:
					return nil, fmt.Errorf("health.service: invalid filter: %q in %q", f, q)
				}
			}
		}
		for _, e := range entries {
			if e.service != group("name") || (group("tag") != "" && !contains(e.tags, group("tag"))) {
				continue
			}
			status := aggregatedStatus(e.checks)
			if !contains(filters, status) && !contains(filters, "any") {
				continue
			}
			address := e.address
			if address == "" {
				address = e.nodeAddress
			}
			tags := append([]string{}, e.tags...)
			sort.Strings(tags)
			result = append(result, &HealthService{
				Node: e.node, NodeAddress: e.nodeAddress, Address: address, ID: e.id,
				Name: e.service, Tags: tags, Status: status, Port: e.port,
			})
		}
		if group("near") == "" {
			sort.SliceStable(result, func(i, j int) bool {
				if result[i].Node != result[j].Node {
					return result[i].Node < result[j].Node
				}
				return result[i].ID < result[j].ID
			})
		}
		return result, nil
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func render(contents string, count int, c containers) ([]byte, error) {
	tmpl := template.New("").Delims("{{", "}}")
	tmpl.Funcs(template.FuncMap{
		"service":    serviceFunc(catalog(count, c)),
		"regexMatch": regexMatch,
	})
	tmpl.Option("missingkey=error")
	tmpl, err := tmpl.Parse(contents)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	return b.Bytes(), nil
}

func main() {
	args := os.Args[1:]
	shape := defaultContainers()
	if len(args) > 1 && args[0] == "-containers" {
		text, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		shape = containers{}
		decoder := json.NewDecoder(bytes.NewReader(text))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&shape); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", args[1], err)
			os.Exit(2)
		}
		args = args[2:]
	}
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: ctmpl-render [-containers FILE] TEMPLATE OUTDIR COUNT...")
		os.Exit(2)
	}
	contents, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, arg := range args[2:] {
		count, err := strconv.Atoi(arg)
		if err != nil || count < 0 {
			fmt.Fprintf(os.Stderr, "COUNT must be a number, got %q\n", arg)
			os.Exit(2)
		}
		out, err := render(string(contents), count, shape)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s with %d instances: %v\n", args[0], count, err)
			os.Exit(1)
		}
		path := filepath.Join(args[1], fmt.Sprintf("haproxy-%d.cfg", count))
		if err := os.WriteFile(path, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// regexMatch is consul-template's (template/funcs.go).
func regexMatch(re, s string) (bool, error) {
	compiled, err := regexp.Compile(re)
	if err != nil {
		return false, err
	}
	return compiled.MatchString(s), nil
}
