using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>
/// The Kubernetes "restricted" Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-standards),
/// checked on a pod template as Pod Security Admission checks a pod (k8s.io/pod-security-admission/policy, the newest
/// version of each check, 1.35): every Baseline control, with the four that Restricted replaces by stricter ones
/// (HostPath volumes by Volume Types, the Baseline Seccomp and Capabilities by Restricted's, /proc mount type by its
/// unconditional form), then the Restricted controls. "Containers" are the containers, init containers and ephemeral
/// containers. Stricter than admission in one respect: Windows pods get no exemption. The optional "non-root groups"
/// control is not part of what admission enforces and is not checked.
/// </summary>
public static class RestrictedProfile
{
    public const string HostProcess = "HostProcess";
    public const string HostNamespaces = "Host Namespaces";
    public const string Privileged = "Privileged Containers";
    public const string HostPorts = "Host Ports";
    public const string AppArmor = "AppArmor";
    public const string SeLinux = "SELinux";
    public const string ProcMount = "/proc Mount Type";
    public const string Sysctls = "Sysctls";
    public const string ProbeHost = "Host Probes / Lifecycle Hooks";
    public const string VolumeTypes = "Volume Types";
    public const string PrivilegeEscalation = "Privilege Escalation";
    public const string RunAsNonRoot = "Running as Non-root";
    public const string RunAsUser = "Running as Non-root user";
    public const string Seccomp = "Seccomp";
    public const string Capabilities = "Capabilities";

    /// <summary>Every control, in the order of the published list.</summary>
    public static readonly string[] Controls =
    [
        HostProcess, HostNamespaces, Privileged, HostPorts, AppArmor, SeLinux, ProcMount, Sysctls, ProbeHost,
        VolumeTypes, PrivilegeEscalation, RunAsNonRoot, RunAsUser, Seccomp, Capabilities,
    ];

    // Baseline "Sysctls": the safe set (sysctlsAllowedV1Dot32).
    private static readonly HashSet<string> SafeSysctls =
    [
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
    ];

    // Baseline "SELinux": the types a pod may ask for (1.31+); user and role may not be set.
    private static readonly HashSet<string> SeLinuxTypes = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

    // Restricted "Volume Types": the only inline volume sources allowed.
    private static readonly HashSet<string> Volumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

    private static readonly HashSet<string> SafeProfiles = ["RuntimeDefault", "Localhost"];

    private const string AppArmorAnnotationPrefix = "container.apparmor.security.beta.kubernetes.io/";

    /// <summary>Every violation of the restricted profile, each as "&lt;control&gt;: &lt;what&gt;"; empty when the pod passes.</summary>
    public static List<string> Violations(V1PodTemplateSpec template)
    {
        var spec = template.Spec;
        var pod = spec.SecurityContext;
        var containers = Containers(spec).ToList();
        var v = new List<string>();
        void Add(string control, string what) => v.Add($"{control}: {what}");

        // --- Baseline ---
        if (pod?.WindowsOptions?.HostProcess == true) Add(HostProcess, "the pod sets windowsOptions.hostProcess=true");
        foreach (var c in containers.Where(c => c.SecurityContext?.WindowsOptions?.HostProcess == true))
            Add(HostProcess, $"container {c.Name} sets windowsOptions.hostProcess=true");

        foreach (var (set, name) in new[] { (spec.HostNetwork, "hostNetwork"), (spec.HostPID, "hostPID"), (spec.HostIPC, "hostIPC") })
            if (set == true) Add(HostNamespaces, $"the pod sets {name}=true");

        foreach (var c in containers.Where(c => c.SecurityContext?.Privileged == true))
            Add(Privileged, $"container {c.Name} sets privileged=true");

        foreach (var c in containers)
            foreach (var p in (c.Ports ?? []).Where(p => p.HostPort is > 0))
                Add(HostPorts, $"container {c.Name} sets hostPort {p.HostPort}");

        if (pod?.AppArmorProfile is { } podArmor && !SafeProfiles.Contains(podArmor.Type)) Add(AppArmor, $"the pod sets appArmorProfile.type {podArmor.Type}");
        foreach (var c in containers.Where(c => c.SecurityContext?.AppArmorProfile is { } a && !SafeProfiles.Contains(a.Type)))
            Add(AppArmor, $"container {c.Name} sets appArmorProfile.type {c.SecurityContext.AppArmorProfile.Type}");
        foreach (var (key, value) in template.Metadata?.Annotations ?? new Dictionary<string, string>())
            if (key.StartsWith(AppArmorAnnotationPrefix, StringComparison.Ordinal) && !(value is "" or "runtime/default" || value.StartsWith("localhost/", StringComparison.Ordinal)))
                Add(AppArmor, $"annotation {key}={value}");

        foreach (var (who, options) in new[] { ("the pod", pod?.SeLinuxOptions) }.Concat(containers.Select(c => ($"container {c.Name}", c.SecurityContext?.SeLinuxOptions))))
        {
            if (options is null) continue;
            if (!SeLinuxTypes.Contains(options.Type ?? "")) Add(SeLinux, $"{who} sets seLinuxOptions.type {options.Type}");
            if (!string.IsNullOrEmpty(options.User)) Add(SeLinux, $"{who} sets seLinuxOptions.user");
            if (!string.IsNullOrEmpty(options.Role)) Add(SeLinux, $"{who} sets seLinuxOptions.role");
        }

        foreach (var c in containers.Where(c => c.SecurityContext?.ProcMount is { } m && m != "Default"))
            Add(ProcMount, $"container {c.Name} sets procMount {c.SecurityContext.ProcMount}");

        foreach (var s in pod?.Sysctls ?? [])
            if (!SafeSysctls.Contains(s.Name)) Add(Sysctls, $"the pod sets the unsafe sysctl {s.Name}");

        foreach (var c in containers)
        {
            foreach (var (what, probe) in new[] { ("livenessProbe", c.LivenessProbe), ("readinessProbe", c.ReadinessProbe), ("startupProbe", c.StartupProbe) })
                if (!string.IsNullOrEmpty(probe?.HttpGet?.Host) || !string.IsNullOrEmpty(probe?.TcpSocket?.Host))
                    Add(ProbeHost, $"container {c.Name}'s {what} sets a host");
            foreach (var (what, hook) in new[] { ("postStart", c.Lifecycle?.PostStart), ("preStop", c.Lifecycle?.PreStop) })
                if (!string.IsNullOrEmpty(hook?.HttpGet?.Host) || !string.IsNullOrEmpty(hook?.TcpSocket?.Host))
                    Add(ProbeHost, $"container {c.Name}'s {what} hook sets a host");
        }

        // --- Restricted ---
        foreach (var volume in spec.Volumes ?? [])
        {
            var sources = JsonNode.Parse(KubernetesJson.Serialize(volume))!.AsObject().Select(kv => kv.Key).Where(k => k != "name").ToList();
            foreach (var source in sources.Where(s => !Volumes.Contains(s)))
                Add(VolumeTypes, $"volume {volume.Name} is a {source} volume");
        }

        foreach (var c in containers.Where(c => c.SecurityContext?.AllowPrivilegeEscalation != false))
            Add(PrivilegeEscalation, $"container {c.Name} must set allowPrivilegeEscalation=false");

        if (pod?.RunAsNonRoot == false) Add(RunAsNonRoot, "the pod sets runAsNonRoot=false");
        foreach (var c in containers)
        {
            if (c.SecurityContext?.RunAsNonRoot == false) Add(RunAsNonRoot, $"container {c.Name} sets runAsNonRoot=false");
            else if (c.SecurityContext?.RunAsNonRoot is null && pod?.RunAsNonRoot != true)
                Add(RunAsNonRoot, $"the pod or container {c.Name} must set runAsNonRoot=true");
        }

        if (pod?.RunAsUser == 0) Add(RunAsUser, "the pod sets runAsUser=0");
        foreach (var c in containers.Where(c => c.SecurityContext?.RunAsUser == 0))
            Add(RunAsUser, $"container {c.Name} sets runAsUser=0");

        var podSeccomp = pod?.SeccompProfile?.Type;
        if (podSeccomp is not null && !SafeProfiles.Contains(podSeccomp)) Add(Seccomp, $"the pod sets seccompProfile.type {podSeccomp}");
        foreach (var c in containers)
        {
            var type = c.SecurityContext?.SeccompProfile?.Type;
            if (type is not null && !SafeProfiles.Contains(type)) Add(Seccomp, $"container {c.Name} sets seccompProfile.type {type}");
            else if (type is null && (podSeccomp is null || !SafeProfiles.Contains(podSeccomp)))
                Add(Seccomp, $"the pod or container {c.Name} must set seccompProfile.type to RuntimeDefault or Localhost");
        }

        foreach (var c in containers)
        {
            var capabilities = c.SecurityContext?.Capabilities;
            if (capabilities?.Drop?.Contains("ALL") != true) Add(Capabilities, $"container {c.Name} must drop ALL capabilities");
            foreach (var added in (capabilities?.Add ?? []).Where(a => a != "NET_BIND_SERVICE"))
                Add(Capabilities, $"container {c.Name} adds the capability {added} (only NET_BIND_SERVICE may be added)");
        }
        return v;
    }

    /// <summary>The containers, init containers and ephemeral containers (read as containers: the same security fields).</summary>
    private static IEnumerable<V1Container> Containers(V1PodSpec spec) =>
        (spec.InitContainers ?? []).Concat(spec.Containers ?? [])
        .Concat((spec.EphemeralContainers ?? []).Select(e => KubernetesJson.Deserialize<V1Container>(KubernetesJson.Serialize(e))));
}
