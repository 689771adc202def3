using System.Text.Json.Nodes;
using Dnm.Node.Telemetry;
using Dnm.Tests.Shared;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>
/// The training cluster's NetworkPolicy, evaluated as a network plugin would for each pod template: which ports it
/// admits, from whom. Akka and the data plane only from the Dnm cluster's own pods, the metrics port only from the
/// monitoring namespace, nothing else.
/// </summary>
public sealed class NetworkPolicySpec
{
    /// <summary>The namespace Prometheus scrapes from (docs/kubernetes.md says how to change it).</summary>
    public const string MonitoringNamespace = "monitoring";

    /// <summary>The label every namespace carries with its own name (Kubernetes 1.22+).</summary>
    public const string NamespaceNameLabel = "kubernetes.io/metadata.name";

    public static TheoryData<string> Overlays() => new(Manifests.Overlays);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Should_admit_the_cluster_ports_from_dnm_pods_and_metrics_from_monitoring_only(string overlay)
    {
        var m = Manifests.Render(overlay);
        Assert.Empty(Problems(m));
        // What that means for each pod, spelled out.
        var coordinator = Admitted(m, m.Coordinator.Spec.Template);
        var worker = Admitted(m, m.Workers.Spec.Template);
        var peers = $"pods {m.Coordinator.Metadata.Name}, {m.Workers.Metadata.Name}";
        var monitoring = $"namespace {MonitoringNamespace}";
        var metrics = TelemetryOptions.DefaultMetricsPort;
        Assert.Equal([(4053, peers), (4054, peers), (metrics, monitoring)], coordinator.Order());
        // A worker is reached by the other workers for the statistics' reduction among them: each worker of a pod on its port.
        List<(int, string)> workerPorts = overlay == "gpu-multi"
            ? [(4053, peers), (4054, peers), (4055, peers), (metrics, monitoring)]
            : [(4053, peers), (4054, peers), (metrics, monitoring)];
        Assert.Equal(workerPorts, worker.Order());
    }

    public static TheoryData<string, string, string> BadPolicies() => new()
    {
        { "no source: Akka from anywhere", """[{"op":"remove","path":"/spec/ingress/0/from"}]""", "admits every source" },
        { "no ports: every port from the peers", """[{"op":"remove","path":"/spec/ingress/0/ports"}]""", "admits every port" },
        { "metrics from the pods of the namespace", """[{"op":"replace","path":"/spec/ingress/1/from/0","value":{"podSelector":{}}}]""", "port 9464 is admitted from" },
        { "metrics from another namespace", """[{"op":"replace","path":"/spec/ingress/1/from/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name","value":"default"}]""", "port 9464 is admitted from" },
        { "an address block", """[{"op":"add","path":"/spec/ingress/0/from/-","value":{"ipBlock":{"cidr":"0.0.0.0/0"}}}]""", "ipBlock" },
        { "a port nobody declared", """[{"op":"add","path":"/spec/ingress/0/ports/-","value":{"protocol":"TCP","port":22}}]""", "port 22 is admitted" },
        { "a misspelt port name", """[{"op":"replace","path":"/spec/ingress/0/ports/1/port","value":"dataplane"}]""", "names no port" },
        { "peers of another app", """[{"op":"replace","path":"/spec/ingress/0/from/0/podSelector/matchLabels/app.kubernetes.io~1name","value":"other"}]""", "port 4053 is admitted from" },
        { "no policy for the workers", """[{"op":"add","path":"/spec/podSelector/matchLabels/app.kubernetes.io~1component","value":"coordinator"}]""", "no NetworkPolicy restricts ingress to Job/dnm-worker" },
        { "egress only", """[{"op":"replace","path":"/spec/policyTypes","value":["Egress"]}]""", "no NetworkPolicy restricts ingress" },
    };

    [Theory]
    [MemberData(nameof(BadPolicies))]
    public void Should_flag_a_policy_that_admits_too_much_or_too_little(string what, string patch, string expected)
    {
        var objects = Kustomize.Build(Repo.Path("deploy", "k8s", "overlays", "cpu"));
        var policy = objects.Single(o => Kustomize.Key(o) == ("NetworkPolicy", "dnm-cluster"));
        foreach (var op in JsonNode.Parse(patch)!.AsArray()) JsonPatch.Apply(policy, op!.AsObject());
        var problems = Problems(Manifests.FromObjects(what, objects));
        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Should_not_select_the_serving_pods()
    {
        var serving = Manifests.Render(Manifests.ServeOverlay).PodTemplates().Single().Template.Metadata.Labels;
        foreach (var policy in Manifests.Render("cpu").NetworkPolicies)
        {
            Assert.False(Manifests.Selects(policy.Spec.PodSelector.MatchLabels, serving));
            foreach (var peer in policy.Spec.Ingress.SelectMany(r => r.FromProperty.OrEmpty()))
                Assert.False(Manifests.Selects(peer.PodSelector?.MatchLabels, serving), "a serving pod would reach the training ports");
        }
    }

    /// <summary>
    /// What is wrong with the overlay's policies for its training pods (those labelled part-of dnm-cluster): a pod no
    /// policy restricts, a rule open to every source or port, a port admitted that the pod does not declare or from
    /// anyone but the expected peers, a declared port nobody may reach, a named port no pod declares.
    /// </summary>
    public static List<string> Problems(Manifests m)
    {
        var problems = new List<string>();
        var pods = m.PodTemplates().Where(t => IsTraining(t.Template)).ToList();
        var names = pods.Select(p => p.Template.Spec.Containers.SelectMany(c => c.Ports.OrEmpty())).SelectMany(p => p).Select(p => p.Name).ToHashSet();
        var peers = "pods " + string.Join(", ", pods.Select(p => Name(p.Workload)).Order());
        foreach (var policy in m.NetworkPolicies)
            foreach (var port in policy.Spec.Ingress.OrEmpty().SelectMany(r => r.Ports.OrEmpty()))
                if (port.Port?.Value is { } name && !int.TryParse(name, out _) && !names.Contains(name))
                    problems.Add($"{policy.Metadata.Name}: port '{name}' names no port of the training pods");
        foreach (var (workload, template) in pods)
        {
            var policies = m.NetworkPolicies.Where(p => Manifests.Selects(p.Spec.PodSelector.MatchLabels, template.Metadata.Labels)
                                                        && p.Spec.PolicyTypes.OrEmpty().Contains("Ingress")).ToList();
            if (policies.Count == 0)
            {
                problems.Add($"no NetworkPolicy restricts ingress to {workload}");
                continue;
            }
            var expected = new Dictionary<int, string>();
            foreach (var p in template.Spec.Containers.SelectMany(c => c.Ports.OrEmpty()))
                expected[p.ContainerPort] = p.Name == "metrics" ? $"namespace {MonitoringNamespace}" : peers;
            var admitted = Admitted(m, template, policies, problems, workload);
            foreach (var (port, source) in admitted)
                if (!expected.TryGetValue(port, out var want)) problems.Add($"{workload}: port {port} is admitted, but no container declares it");
                else if (source != want) problems.Add($"{workload}: port {port} is admitted from {source}, not only from {want}");
            foreach (var port in expected.Keys.Where(p => !admitted.Any(a => a.Port == p)))
                problems.Add($"{workload}: port {port} is declared but no rule admits it");
        }
        return problems;
    }

    private static List<(int Port, string Source)> Admitted(Manifests m, V1PodTemplateSpec template) =>
        Admitted(m, template, m.NetworkPolicies.Where(p => Manifests.Selects(p.Spec.PodSelector.MatchLabels, template.Metadata.Labels)).ToList(), [], "");

    /// <summary>Each (port, source) the policies admit to the pod; a source is "pods a, b" (this namespace's training pods a peer selector matches) or "namespace n".</summary>
    private static List<(int Port, string Source)> Admitted(Manifests m, V1PodTemplateSpec template, List<V1NetworkPolicy> policies, List<string> problems, string workload)
    {
        var training = m.PodTemplates().Where(t => IsTraining(t.Template)).ToList();
        var ports = template.Spec.Containers.SelectMany(c => c.Ports.OrEmpty()).ToList();
        var admitted = new List<(int, string)>();
        foreach (var policy in policies)
            foreach (var rule in policy.Spec.Ingress.OrEmpty())
            {
                var where = $"{workload}: {policy.Metadata.Name}";
                if (rule.Ports is not { Count: > 0 }) problems.Add($"{where}: a rule admits every port");
                if (rule.FromProperty is not { Count: > 0 }) problems.Add($"{where}: a rule admits every source");
                var numbers = rule.Ports.OrEmpty().SelectMany(p => p.Port?.Value is { } v
                    ? int.TryParse(v, out var n) ? [n] : ports.Where(c => c.Name == v).Select(c => c.ContainerPort)
                    : ports.Select(c => c.ContainerPort)).ToList();
                foreach (var peer in rule.FromProperty.OrEmpty())
                {
                    string source;
                    if (peer.IpBlock is not null) source = $"ipBlock {peer.IpBlock.Cidr}";
                    else if (peer.NamespaceSelector is { } ns)
                        source = peer.PodSelector is null && ns.MatchExpressions is null && ns.MatchLabels is { Count: 1 } l && l.TryGetValue(NamespaceNameLabel, out var name)
                            ? $"namespace {name}"
                            : $"namespaces {ns.MatchLabels?.Count ?? 0} labels / pods {peer.PodSelector?.MatchLabels?.Count ?? 0} labels";
                    else if (peer.PodSelector is { MatchExpressions: null } pods && pods.MatchLabels is { Count: > 0 })
                    {
                        var selected = training.Where(t => Manifests.Selects(pods.MatchLabels, t.Template.Metadata.Labels)).Select(t => Name(t.Workload)).Order().ToList();
                        source = selected.Count == 0 ? "no training pod (other pods of the namespace)" : "pods " + string.Join(", ", selected);
                    }
                    else source = "every pod of the namespace";
                    if (peer.IpBlock is not null) problems.Add($"{where}: admits an ipBlock");
                    admitted.AddRange(numbers.Select(n => (n, source)));
                }
                if (rule.FromProperty is not { Count: > 0 }) admitted.AddRange(numbers.Select(n => (n, "anywhere")));
            }
        return admitted.Distinct().ToList();
    }

    private static bool IsTraining(V1PodTemplateSpec t) => t.Metadata.Labels?.TryGetValue("app.kubernetes.io/part-of", out var v) == true && v == "dnm-cluster";

    /// <summary>"Job/dnm-worker" → "dnm-worker".</summary>
    private static string Name(string workload) => workload[(workload.IndexOf('/') + 1)..];
}
