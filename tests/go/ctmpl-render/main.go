// Command ctmpl-render renders a consul-template template the way consul-template does, with
// Go's own text/template, against a fixed fixture catalog, so the static checks can give the
// results to `haproxy -c` without a consul-template binary or a Consul agent (none can be had
// offline).
//
// Usage: ctmpl-render TEMPLATE OUTDIR COUNT...
//
// For each COUNT it writes OUTDIR/haproxy-COUNT.cfg: TEMPLATE executed while the catalog holds
// COUNT passing instances of the service "web" (plus instances that are not passing, which
// consul-template's `service` leaves out).
//
// What is consul-template's, and where it comes from (hashicorp/consul-template, template/ and
// dependency/):
//   - the template is parsed like template.Execute does it: text/template, delimiters {{ }},
//     option missingkey=error (our consul-template.hcl sets error_on_missing_key = true),
//     executed with nil data;
//   - `service` is serviceFunc + HealthServiceQuery: its arguments are joined with "|" and
//     parsed as "TAG.NAME?QUERY@DC~NEAR|FILTER"; no argument or an empty first one gives an
//     empty list; without a filter only passing instances are returned; each instance's
//     status is the aggregate of its checks (maintenance, then critical, then warning win over
//     passing); an empty service address falls back to the node's; tags are sorted; the list
//     is sorted by node, then ID, unless NEAR is given. The entries have HealthService's
//     fields (.Node, .NodeAddress, .Address, .ID, .Name, .Tags, .Status, .Port, ...).
//
// Only `service` is defined. A template that calls any other consul-template function fails
// to parse ("function ... not defined"), so a blueprint that starts using one fails the check
// until the function is added here with its real semantics.
package main

import (
	"bytes"
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

// catalog is the fixture for one COUNT: instances as registrator registers them (ID
// "host:container:port", the container's address on the stack network), listed out of order
// so the sorting is exercised, with one replica still starting (critical) and one drained
// (service maintenance), which `service "web"` must leave out.
func catalog(count int) []entry {
	var all []entry
	instance := func(i int, checks ...check) entry {
		return entry{
			node:        "consul",
			nodeAddress: "172.18.0.2",
			id:          fmt.Sprintf("registrator:hits-web-%d:5000", i),
			service:     "web",
			address:     fmt.Sprintf("172.18.0.%d", 10+i),
			port:        5000,
			checks:      append([]check{{"serfHealth", "passing"}}, checks...),
		}
	}
	for i := count; i >= 1; i-- {
		all = append(all, instance(i, check{"service:registrator:hits-web-" + strconv.Itoa(i) + ":5000", "passing"}))
	}
	all = append(all,
		instance(count+1, check{"service:starting", "critical"}),
		instance(count+2, check{"_service_maintenance:registrator:hits-web-drained:5000", "critical"}),
	)
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

func render(contents string, count int) ([]byte, error) {
	tmpl := template.New("").Delims("{{", "}}")
	tmpl.Funcs(template.FuncMap{"service": serviceFunc(catalog(count))})
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
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: ctmpl-render TEMPLATE OUTDIR COUNT...")
		os.Exit(2)
	}
	contents, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, arg := range os.Args[3:] {
		count, err := strconv.Atoi(arg)
		if err != nil || count < 0 {
			fmt.Fprintf(os.Stderr, "COUNT must be a number, got %q\n", arg)
			os.Exit(2)
		}
		out, err := render(string(contents), count)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s with %d instances: %v\n", os.Args[1], count, err)
			os.Exit(1)
		}
		path := filepath.Join(os.Args[2], fmt.Sprintf("haproxy-%d.cfg", count))
		if err := os.WriteFile(path, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
