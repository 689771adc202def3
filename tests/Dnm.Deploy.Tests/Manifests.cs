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

    /// <summary>The only kinds deploy/k8s may hold: the specs below check every workload, so a new kind must be added here knowingly.</summary>
    public static readonly HashSet<string> Kinds = ["Service", "StatefulSet", "ConfigMap", "PersistentVolumeClaim", "PodMonitor"];

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

    public IReadOnlyList<V1StatefulSet> StatefulSets => All<V1StatefulSet>("StatefulSet").ToList();
    public V1StatefulSet Coordinator => Get<V1StatefulSet>("StatefulSet", "dnm-coordinator");
    public V1StatefulSet Workers => Get<V1StatefulSet>("StatefulSet", "dnm-worker");

    /// <summary>The `dnm` container of a workload.</summary>
    public static V1Container Dnm(V1StatefulSet s) => s.Spec.Template.Spec.Containers.Single(c => c.Name == "dnm");

    /// <summary>The value of a plain (value:) environment variable of a container, or null.</summary>
    public static string? Env(V1Container c, string name) => c.Env?.SingleOrDefault(e => e.Name == name)?.Value;

    public static int Port(V1Container c, string name) =>
        c.Ports?.SingleOrDefault(p => p.Name == name)?.ContainerPort ?? throw new InvalidOperationException($"container {c.Name} has no port {name}");
}
