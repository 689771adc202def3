using System.Globalization;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>
/// `dotnet Dnm.Deploy.Tests.dll render-env &lt;overlay&gt; &lt;dir&gt;`: what scripts/rehearse-k8s.sh needs from the rendered
/// manifests, so that it starts the same topology with the same environment and file system. For each Job it writes
/// &lt;name&gt;.completions (its pods, indexes 0..n-1), &lt;name&gt;.subdomain (the headless Service its pods are named under,
/// empty for none), &lt;name&gt;.grace (its pods' terminationGracePeriodSeconds, Kubernetes' 30 when unset), &lt;name&gt;.args (one argument a line), &lt;name&gt;.env (NAME=VALUE lines of the `dnm` container, in order;
/// downward-API variables as NAME=@fieldRef:&lt;path&gt;), &lt;name&gt;.mounts (the `dnm` container's volume mounts, one
/// "&lt;mountPath&gt; &lt;emptyDir|persistentVolumeClaim|configMap|secret|other&gt; &lt;ro|rw&gt;" a line) and &lt;name&gt;.security (the
/// effective user, group and root file system: "runAsUser=N", "runAsGroup=N", "readOnlyRootFilesystem=true|false"), and
/// the `dnm` container's ConfigMap volumes as files under &lt;dir&gt;/root/&lt;mountPath&gt;/.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is not ["render-env", var overlay, var dir])
        {
            Console.Error.WriteLine("usage: dotnet Dnm.Deploy.Tests.dll render-env <overlay> <dir>");
            return 2;
        }
        try
        {
            var m = Manifests.Render(overlay);
            Directory.CreateDirectory(dir);
            foreach (var job in m.Jobs)
            {
                var name = job.Metadata.Name;
                var pod = job.Spec.Template.Spec;
                var c = Manifests.Dnm(job);
                File.WriteAllText(Path.Combine(dir, name + ".completions"), $"{job.Spec.Completions ?? 1}\n");
                File.WriteAllText(Path.Combine(dir, name + ".subdomain"), $"{pod.Subdomain}\n");
                File.WriteAllText(Path.Combine(dir, name + ".grace"), $"{pod.TerminationGracePeriodSeconds ?? 30}\n");
                File.WriteAllLines(Path.Combine(dir, name + ".args"), c.Args ?? []);
                File.WriteAllLines(Path.Combine(dir, name + ".env"), (c.Env ?? []).Select(e =>
                    $"{e.Name}={(e.ValueFrom?.FieldRef is { } f ? "@fieldRef:" + f.FieldPath : e.Value)}"));
                File.WriteAllLines(Path.Combine(dir, name + ".mounts"), (c.VolumeMounts ?? []).Select(mount =>
                {
                    var volume = pod.Volumes.Single(v => v.Name == mount.Name);
                    var kind = volume.EmptyDir is not null ? "emptyDir"
                        : volume.PersistentVolumeClaim is not null ? "persistentVolumeClaim"
                        : volume.ConfigMap is not null ? "configMap"
                        : volume.Secret is not null ? "secret"
                        : "other";
                    // A ConfigMap or Secret volume is always read-only, whatever the mount says.
                    var readOnly = mount.ReadOnlyProperty == true || volume.ConfigMap is not null || volume.Secret is not null || volume.PersistentVolumeClaim?.ReadOnlyProperty == true;
                    return $"{mount.MountPath} {kind} {(readOnly ? "ro" : "rw")}";
                }));
                File.WriteAllLines(Path.Combine(dir, name + ".security"),
                [
                    $"runAsUser={Effective(c.SecurityContext?.RunAsUser, pod.SecurityContext?.RunAsUser)}",
                    $"runAsGroup={Effective(c.SecurityContext?.RunAsGroup, pod.SecurityContext?.RunAsGroup)}",
                    $"readOnlyRootFilesystem={(c.SecurityContext?.ReadOnlyRootFilesystem == true ? "true" : "false")}",
                ]);
                foreach (var mount in c.VolumeMounts ?? [])
                {
                    var volume = pod.Volumes.Single(v => v.Name == mount.Name);
                    if (volume.ConfigMap is null) continue;
                    var map = m.Get<V1ConfigMap>("ConfigMap", volume.ConfigMap.Name);
                    var folder = Path.Combine(dir, "root", mount.MountPath.TrimStart('/'));
                    Directory.CreateDirectory(folder);
                    foreach (var (key, value) in map.Data) File.WriteAllText(Path.Combine(folder, key), value);
                }
            }
            return 0;
        }
        catch (Exception e) when (e is KustomizeException or IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"render-env: {e.Message}");
            return 1;
        }
    }

    /// <summary>A container's setting wins over the pod's; the rehearsal refuses to guess the image's user.</summary>
    private static string Effective(long? container, long? pod) =>
        (container ?? pod)?.ToString(CultureInfo.InvariantCulture) ?? throw new InvalidOperationException("the manifests must set runAsUser and runAsGroup");
}
