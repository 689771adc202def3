using System.Text.Json.Nodes;
using Dnm.Tests.Shared;
using k8s;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>One overlay, rendered as `kustomize build` would (<see cref="Kustomize"/>), as the official model types.</summary>
public sealed class Manifests
{
    /// <summary>The training cluster's overlays (<see cref="ManifestSpec"/>).</summary>
    public static readonly string[] Overlays = ["cpu", "gpu", "gpu-multi"];

    /// <summary>The placement service's overlay (`dnm serve`; <see cref="ServeManifestSpec"/>).</summary>
    public const string ServeOverlay = "serve";

    /// <summary>Every overlay: the training cluster's and the placement service's.</summary>
    public static readonly string[] AllOverlays = [.. Overlays, ServeOverlay];

    /// <summary>The only kinds deploy/k8s may hold: the specs below check every workload, so a new kind must be added here knowingly.</summary>
    public static readonly HashSet<string> Kinds = ["Service", "Job", "ConfigMap", "PersistentVolumeClaim", "PodMonitor", "NetworkPolicy"];

    /// <summary>Where each workload kind keeps its pod template (<see cref="PodTemplates"/>); a kind missing here fails the render.</summary>
    private static readonly Dictionary<string, string[]> TemplatePaths = new()
    {
        ["Job"] = ["spec", "template"],
        ["Deployment"] = ["spec", "template"],
        ["StatefulSet"] = ["spec", "template"],
        ["DaemonSet"] = ["spec", "template"],
        ["ReplicaSet"] = ["spec", "template"],
        ["ReplicationController"] = ["spec", "template"],
        ["CronJob"] = ["spec", "jobTemplate", "spec", "template"],
    };

    private static readonly HashSet<string> NoPods = ["Service", "ConfigMap", "Secret", "PersistentVolumeClaim", "PodMonitor", "NetworkPolicy", "ServiceAccount"];

    private Manifests(string overlay, List<JsonObject> objects)
    {
        Overlay = overlay;
        Objects = objects;
    }

    public string Overlay { get; }
    public IReadOnlyList<JsonObject> Objects { get; }

    public static Manifests Render(string overlay) => new(overlay, Kustomize.Build(Repo.Path("deploy", "k8s", "overlays", overlay)));

    public static Manifests FromObjects(string name, List<JsonObject> objects) => new(name, objects);

    public IEnumerable<T> All<T>(string kind) =>
        Objects.Where(o => o["kind"]?.GetValue<string>() == kind).Select(o => KubernetesJson.Deserialize<T>(o.ToJsonString()));

    public T Get<T>(string kind, string name) =>
        Objects.Where(o => Kustomize.Key(o) == (kind, name)).Select(o => KubernetesJson.Deserialize<T>(o.ToJsonString())).SingleOrDefault()
        ?? throw new InvalidOperationException($"{Overlay}: no {kind} {name}");

    public IReadOnlyList<V1Job> Jobs => All<V1Job>("Job").ToList();
    public V1Job Coordinator => Get<V1Job>("Job", "dnm-coordinator");
    public V1Job Workers => Get<V1Job>("Job", "dnm-worker");
    public IReadOnlyList<V1NetworkPolicy> NetworkPolicies => All<V1NetworkPolicy>("NetworkPolicy").ToList();

    /// <summary>
    /// Every pod this overlay can create, as "Kind/name" and its pod template: a Pod itself, or the template of any
    /// workload kind. An object of an unknown kind is refused rather than skipped, so no pod escapes the checks.
    /// </summary>
    public IEnumerable<(string Workload, V1PodTemplateSpec Template)> PodTemplates()
    {
        foreach (var o in Objects)
        {
            var (kind, name) = Kustomize.Key(o);
            if (NoPods.Contains(kind)) continue;
            JsonNode? template;
            if (kind == "Pod") template = new JsonObject { ["metadata"] = o["metadata"]?.DeepClone(), ["spec"] = o["spec"]?.DeepClone() };
            else if (TemplatePaths.TryGetValue(kind, out var path)) template = path.Aggregate((JsonNode?)o, (n, key) => n?[key]);
            else throw new InvalidOperationException($"{Overlay}: {kind} {name}: unknown kind; add it to Manifests.TemplatePaths or NoPods");
            if (template is null) throw new InvalidOperationException($"{Overlay}: {kind} {name} has no pod template");
            yield return ($"{kind}/{name}", KubernetesJson.Deserialize<V1PodTemplateSpec>(template.ToJsonString()));
        }
    }

    /// <summary>The `dnm` container of a Job.</summary>
    public static V1Container Dnm(V1Job j) => Dnm(j.Spec.Template);

    public static V1Container Dnm(V1PodTemplateSpec t) => t.Spec.Containers.Single(c => c.Name == "dnm");

    /// <summary>The value of a plain (value:) environment variable of a container, or null.</summary>
    public static string? Env(V1Container c, string name) => c.Env?.SingleOrDefault(e => e.Name == name)?.Value;

    public static int Port(V1Container c, string name) =>
        c.Ports?.SingleOrDefault(p => p.Name == name)?.ContainerPort ?? throw new InvalidOperationException($"container {c.Name} has no port {name}");

    /// <summary>Whether a label selector's matchLabels (all of them; an empty one selects nothing here) match the labels.</summary>
    public static bool Selects(IDictionary<string, string>? selector, IDictionary<string, string>? labels) =>
        selector is { Count: > 0 } && selector.All(kv => labels is not null && labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}
