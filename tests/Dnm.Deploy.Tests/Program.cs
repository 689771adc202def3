using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>
/// `dotnet Dnm.Deploy.Tests.dll render-env &lt;overlay&gt; &lt;dir&gt;`: what scripts/rehearse-k8s.sh needs from the rendered
/// manifests, so that it starts the same topology with the same environment. For each StatefulSet it writes
/// &lt;name&gt;.replicas, &lt;name&gt;.args (one argument a line) and &lt;name&gt;.env (NAME=VALUE lines of the `dnm` container, in
/// order; downward-API variables as NAME=@fieldRef:&lt;path&gt;), and the `dnm` container's ConfigMap volumes as files
/// under &lt;dir&gt;/root/&lt;mountPath&gt;/.
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
            foreach (var s in m.StatefulSets)
            {
                var name = s.Metadata.Name;
                var c = Manifests.Dnm(s);
                File.WriteAllText(Path.Combine(dir, name + ".replicas"), $"{s.Spec.Replicas ?? 1}\n");
                File.WriteAllLines(Path.Combine(dir, name + ".args"), c.Args ?? []);
                File.WriteAllLines(Path.Combine(dir, name + ".env"), (c.Env ?? []).Select(e =>
                    $"{e.Name}={(e.ValueFrom?.FieldRef is { } f ? "@fieldRef:" + f.FieldPath : e.Value)}"));
                foreach (var mount in c.VolumeMounts ?? [])
                {
                    var volume = s.Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name);
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
}
