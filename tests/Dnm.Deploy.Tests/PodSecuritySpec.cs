using System.Text.Json.Nodes;
using Dnm.Cluster.Hosting;
using Dnm.Tests.Shared;
using k8s;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>Every pod any overlay creates, against the "restricted" Pod Security Standard (<see cref="RestrictedProfile"/>) and this deployment's own hardening.</summary>
public sealed class PodSecuritySpec
{
    public static TheoryData<string> AllOverlays() => new(Manifests.AllOverlays);

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public void Every_pod_should_pass_the_restricted_pod_security_standard(string overlay)
    {
        var templates = Manifests.Render(overlay).PodTemplates().ToList();
        Assert.NotEmpty(templates);
        foreach (var (workload, template) in templates)
            Assert.True(RestrictedProfile.Violations(template) is [], $"{overlay}: {workload}:\n  {string.Join("\n  ", RestrictedProfile.Violations(template))}");
    }

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public void Every_container_should_have_a_read_only_root_and_the_pod_no_api_token_nor_service_variables(string overlay)
    {
        foreach (var (workload, template) in Manifests.Render(overlay).PodTemplates())
        {
            var spec = template.Spec;
            Assert.False(spec.AutomountServiceAccountToken ?? true, $"{overlay}: {workload} mounts a service account token it does not use");
            Assert.False(spec.EnableServiceLinks ?? true, $"{overlay}: {workload} gets service environment variables");
            foreach (var c in spec.InitContainers.OrEmpty().Concat(spec.Containers))
            {
                Assert.True(c.SecurityContext?.ReadOnlyRootFilesystem == true, $"{overlay}: {workload}/{c.Name} can write its root file system");
                // What it writes has a volume: .NET's diagnostic sockets go to /tmp (an emptyDir, bounded).
                var tmp = c.VolumeMounts.OrEmpty().SingleOrDefault(m => m.MountPath == "/tmp");
                Assert.True(tmp is not null, $"{overlay}: {workload}/{c.Name} has no writable /tmp");
                Assert.NotNull(spec.Volumes.Single(v => v.Name == tmp!.Name).EmptyDir?.SizeLimit);
            }
        }
    }

    [Fact]
    public void Service_links_must_stay_off_because_a_service_name_would_set_a_dnm_variable()
    {
        // Kubernetes gives every container <SERVICE>_PORT=tcp://ip:port (and more) for each Service of the namespace:
        // the Service dnm-metrics would set DNM_METRICS_PORT, which `dnm node` reads as its metrics port.
        var services = Manifests.AllOverlays.SelectMany(o => Manifests.Render(o).All<V1Service>("Service")).Select(s => s.Metadata.Name);
        var injected = services.SelectMany(s =>
        {
            var prefix = s.ToUpperInvariant().Replace('-', '_');
            return new[] { prefix + "_PORT", prefix + "_SERVICE_HOST", prefix + "_SERVICE_PORT" };
        });
        Assert.Contains(NodeEnvironment.MetricsPort, injected);
    }

    public static TheoryData<string, string> BadPods() => new()
    {
        { RestrictedProfile.HostProcess, """[{"op":"add","path":"/spec/securityContext/windowsOptions","value":{"hostProcess":true}}]""" },
        { RestrictedProfile.HostNamespaces, """[{"op":"add","path":"/spec/hostNetwork","value":true}]""" },
        { RestrictedProfile.HostNamespaces, """[{"op":"add","path":"/spec/hostPID","value":true}]""" },
        { RestrictedProfile.Privileged, """[{"op":"add","path":"/spec/containers/0/securityContext/privileged","value":true}]""" },
        { RestrictedProfile.HostPorts, """[{"op":"add","path":"/spec/containers/0/ports/0/hostPort","value":4053}]""" },
        { RestrictedProfile.AppArmor, """[{"op":"add","path":"/spec/securityContext/appArmorProfile","value":{"type":"Unconfined"}}]""" },
        { RestrictedProfile.AppArmor, """[{"op":"add","path":"/metadata/annotations","value":{"container.apparmor.security.beta.kubernetes.io/dnm":"unconfined"}}]""" },
        { RestrictedProfile.SeLinux, """[{"op":"add","path":"/spec/securityContext/seLinuxOptions","value":{"user":"system_u"}}]""" },
        { RestrictedProfile.SeLinux, """[{"op":"add","path":"/spec/initContainers/0/securityContext/seLinuxOptions","value":{"type":"spc_t"}}]""" },
        { RestrictedProfile.ProcMount, """[{"op":"add","path":"/spec/containers/0/securityContext/procMount","value":"Unmasked"}]""" },
        { RestrictedProfile.Sysctls, """[{"op":"add","path":"/spec/securityContext/sysctls","value":[{"name":"kernel.msgmax","value":"65536"}]}]""" },
        { RestrictedProfile.ProbeHost, """[{"op":"add","path":"/spec/containers/0/livenessProbe/httpGet/host","value":"10.0.0.1"}]""" },
        { RestrictedProfile.VolumeTypes, """[{"op":"add","path":"/spec/volumes/-","value":{"name":"host","hostPath":{"path":"/"}}}]""" },
        { RestrictedProfile.VolumeTypes, """[{"op":"add","path":"/spec/volumes/-","value":{"name":"share","nfs":{"server":"nfs","path":"/"}}}]""" },
        // The init container is checked as the main one is.
        { RestrictedProfile.PrivilegeEscalation, """[{"op":"remove","path":"/spec/initContainers/0/securityContext/allowPrivilegeEscalation"}]""" },
        { RestrictedProfile.RunAsNonRoot, """[{"op":"remove","path":"/spec/securityContext/runAsNonRoot"}]""" },
        { RestrictedProfile.RunAsNonRoot, """[{"op":"add","path":"/spec/containers/0/securityContext/runAsNonRoot","value":false}]""" },
        { RestrictedProfile.RunAsUser, """[{"op":"add","path":"/spec/containers/0/securityContext/runAsUser","value":0}]""" },
        { RestrictedProfile.Seccomp, """[{"op":"remove","path":"/spec/securityContext/seccompProfile"}]""" },
        { RestrictedProfile.Seccomp, """[{"op":"add","path":"/spec/initContainers/0/securityContext/seccompProfile","value":{"type":"Unconfined"}}]""" },
        { RestrictedProfile.Capabilities, """[{"op":"remove","path":"/spec/containers/0/securityContext/capabilities/drop"}]""" },
        { RestrictedProfile.Capabilities, """[{"op":"add","path":"/spec/containers/0/securityContext/capabilities/add","value":["NET_RAW"]}]""" },
    };

    [Theory]
    [MemberData(nameof(BadPods))]
    public void The_checker_should_report_exactly_the_control_a_pod_breaks(string control, string patch)
    {
        var violations = RestrictedProfile.Violations(Patched(patch));
        Assert.NotEmpty(violations);
        Assert.All(violations, v => Assert.StartsWith(control + ": ", v, StringComparison.Ordinal));
    }

    [Fact]
    public void A_pod_that_breaks_every_control_should_fail_each_of_them()
    {
        var all = "[" + string.Join(",", BadPods().Select(row => ((string)row[1]).Trim()[1..^1])) + "]";
        var broken = RestrictedProfile.Violations(Patched(all)).Select(v => v[..v.IndexOf(": ", StringComparison.Ordinal)]).ToHashSet();
        Assert.Equal(RestrictedProfile.Controls.Order(), broken.Order());
    }

    [Fact]
    public void A_container_level_setting_should_satisfy_what_the_pod_leaves_unset()
    {
        // runAsNonRoot and seccomp may be set per container instead of per pod, as Pod Security Admission allows.
        var perContainer = Patched("""
            [{"op":"remove","path":"/spec/securityContext/runAsNonRoot"},
             {"op":"remove","path":"/spec/securityContext/seccompProfile"},
             {"op":"add","path":"/spec/containers/0/securityContext/runAsNonRoot","value":true},
             {"op":"add","path":"/spec/containers/0/securityContext/seccompProfile","value":{"type":"RuntimeDefault"}},
             {"op":"add","path":"/spec/initContainers/0/securityContext/runAsNonRoot","value":true},
             {"op":"add","path":"/spec/initContainers/0/securityContext/seccompProfile","value":{"type":"Localhost","localhostProfile":"dnm.json"}}]
            """);
        Assert.Empty(RestrictedProfile.Violations(perContainer));
    }

    /// <summary>The cpu overlay's coordinator pod (init container and main container), with JSON 6902 operations applied.</summary>
    private static V1PodTemplateSpec Patched(string operations)
    {
        var job = Kustomize.Build(Repo.Path("deploy", "k8s", "overlays", "cpu")).Single(o => Kustomize.Key(o) == ("Job", "dnm-coordinator"));
        var template = job["spec"]!["template"]!.DeepClone().AsObject();
        Assert.Empty(RestrictedProfile.Violations(KubernetesJson.Deserialize<V1PodTemplateSpec>(template.ToJsonString())));
        foreach (var op in JsonNode.Parse(operations)!.AsArray()) JsonPatch.Apply(template, op!.AsObject());
        return KubernetesJson.Deserialize<V1PodTemplateSpec>(template.ToJsonString());
    }
}

internal static class Enumerables
{
    public static IEnumerable<T> OrEmpty<T>(this IEnumerable<T>? items) => items ?? [];
}
