using System.Diagnostics;
using System.Text.Json.Nodes;
using Dnm.Tests.Shared;

namespace Dnm.Deploy.Tests;

/// <summary>The renderer the manifest specs use (<see cref="Kustomize"/>): its operations, and its output against real kustomize.</summary>
public sealed class KustomizeSpec
{
    public static TheoryData<string> Overlays() => new([.. Manifests.Overlays, Manifests.ServeOverlay]);

    [NeedsKubectlTheory]
    [MemberData(nameof(Overlays))]
    public void Should_render_every_overlay_as_kubectl_kustomize_does(string overlay)
    {
        var dir = Repo.Path("deploy", "k8s", "overlays", overlay);
        var (code, stdout, stderr) = Run("kubectl", "kustomize", dir);
        Assert.True(code == 0, stderr);
        var real = Yaml.LoadAll(stdout).Select(n => n.AsObject()).ToList();
        var ours = Kustomize.Build(dir);
        Assert.Equal(real.Select(Kustomize.Key).Order(), ours.Select(Kustomize.Key).Order());
        foreach (var o in ours)
        {
            var r = real.Single(x => Kustomize.Key(x) == Kustomize.Key(o));
            Assert.True(JsonNode.DeepEquals(r, o), $"{overlay}: {Kustomize.Key(o)} differs:\nkubectl: {r.ToJsonString()}\nours:    {o.ToJsonString()}");
        }
    }

    [Fact]
    public void Should_refuse_a_generator_file_outside_the_kustomization_folder_as_kustomize_does()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "outside.json"), "{}");
        var inner = Directory.CreateDirectory(Path.Combine(dir.Path, "k")).FullName;
        File.WriteAllText(Path.Combine(inner, "kustomization.yaml"),
            "configMapGenerator:\n  - name: x\n    files: [../outside.json]\n    options:\n      disableNameSuffixHash: true\n");
        var e = Assert.Throws<KustomizeException>(() => Kustomize.Build(inner));
        Assert.Contains("is not in or below", e.Message);
        if (NeedsKubectlTheoryAttribute.Kubectl() is not null)
            Assert.NotEqual(0, Run("kubectl", "kustomize", inner).Code);
    }

    [Fact]
    public void Should_refuse_fields_it_does_not_implement()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "kustomization.yaml"), "namePrefix: x-\nresources: []\n");
        Assert.Contains("'namePrefix' is not supported", Assert.Throws<KustomizeException>(() => Kustomize.Build(dir.Path)).Message);
        File.WriteAllText(Path.Combine(dir.Path, "kustomization.yaml"), "configMapGenerator:\n  - name: x\n    literals: [a=b]\n");
        Assert.Throws<KustomizeException>(() => Kustomize.Build(dir.Path));
    }

    [Fact]
    public void Json_patch_should_add_replace_remove_and_test()
    {
        var doc = JsonNode.Parse("""{"a":{"list":[1,2],"x":"y"}}""")!.AsObject();
        JsonPatch.Apply(doc, Op("add", "/a/list/-", 3));
        JsonPatch.Apply(doc, Op("add", "/a/list/0", 0));
        JsonPatch.Apply(doc, Op("add", "/a/slash~1key", "v"));
        JsonPatch.Apply(doc, Op("replace", "/a/x", "z"));
        JsonPatch.Apply(doc, Op("remove", "/a/list/1", null));
        JsonPatch.Apply(doc, Op("test", "/a/list/1", 2));
        Assert.Equal("""{"a":{"list":[0,2,3],"x":"z","slash/key":"v"}}""", doc.ToJsonString());
        Assert.Contains("test failed", Assert.Throws<KustomizeException>(() => JsonPatch.Apply(doc, Op("test", "/a/x", "y"))).Message);
        Assert.Throws<KustomizeException>(() => JsonPatch.Apply(doc, Op("replace", "/a/missing", 1)));
        Assert.Throws<KustomizeException>(() => JsonPatch.Apply(doc, Op("add", "/a/list/9", 1)));
    }

    [Fact]
    public void Yaml_scalars_should_keep_their_types()
    {
        var n = Yaml.LoadOne("a: 1\nb: \"1\"\nc: true\nd: 'true'\ne: 1.5\nf: cuda:0\ng: 500m\nh: null\n")!;
        Assert.Equal("""{"a":1,"b":"1","c":true,"d":"true","e":1.5,"f":"cuda:0","g":"500m","h":null}""", n.ToJsonString());
    }

    private static JsonObject Op(string op, string path, JsonNode? value)
    {
        var o = new JsonObject { ["op"] = op, ["path"] = path };
        if (op != "remove") o["value"] = value;
        return o;
    }

    internal static (int Code, string Out, string Error) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.GetAwaiter().GetResult());
    }
}

/// <summary>A theory that compares with `kubectl kustomize`: skipped where kubectl (with kustomize 4 or later) is not installed.</summary>
public sealed class NeedsKubectlTheoryAttribute : TheoryAttribute
{
    public NeedsKubectlTheoryAttribute()
    {
        if (Kubectl() is null)
            Skip = "kubectl with kustomize v4+ is not installed (Debian 12's kubernetes-client carries kustomize 2.0); the in-repo renderer was used alone";
    }

    /// <summary>The kubectl on PATH if its kustomize is v4 or later, else null.</summary>
    public static string? Kubectl()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "kubectl")).FirstOrDefault(File.Exists);
        if (path is null) return null;
        try
        {
            var (code, stdout, _) = KustomizeSpec.Run(path, "version", "--client");
            var m = System.Text.RegularExpressions.Regex.Match(stdout, @"Kustomize Version: v(\d+)");
            return code == 0 && m.Success && int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 4 ? path : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}

public sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "dnm-deploy-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
