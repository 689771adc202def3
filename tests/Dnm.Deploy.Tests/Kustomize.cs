using System.Globalization;
using System.Text.Json.Nodes;

namespace Dnm.Deploy.Tests;

/// <summary>
/// Renders a kustomization as `kustomize build` does, for exactly the features deploy/ uses, so the manifest specs
/// run where no kustomize is installed (Debian 12's kubectl 1.20 carries kustomize 2.0, which knows neither `patches`
/// nor generator options). Anything else in a kustomization.yaml is refused rather than ignored. Where `kubectl` is
/// installed, <c>KustomizeSpec</c> checks this renderer's output against `kubectl kustomize`.
/// Supported: <c>resources</c> (files, and folders holding a kustomization), <c>configMapGenerator</c> (<c>files</c>,
/// <c>behavior</c> create|replace|merge, <c>options.labels</c>, <c>options.disableNameSuffixHash: true</c> only: the
/// content hash suffix is not implemented), <c>images</c> (<c>newName</c>, <c>newTag</c>) and <c>patches</c> holding
/// JSON 6902 operations (add, remove, replace, test) with a <c>target</c> kind and name. As kustomize's default load
/// restrictor does, files must lie in or below the kustomization's folder.
/// </summary>
public static class Kustomize
{
    private static readonly HashSet<string> Fields = ["resources", "configMapGenerator", "images", "patches"];

    public static List<JsonObject> Build(string directory)
    {
        directory = Path.GetFullPath(directory);
        var file = Path.Combine(directory, "kustomization.yaml");
        if (!File.Exists(file)) throw new KustomizeException($"{directory}: no kustomization.yaml");
        var k = Yaml.LoadOne(File.ReadAllText(file)) as JsonObject ?? throw new KustomizeException($"{file}: not a mapping");
        foreach (var (key, _) in k)
            if (!Fields.Contains(key)) throw new KustomizeException($"{file}: field '{key}' is not supported by this renderer");

        var objects = new List<JsonObject>();
        foreach (var r in Strings(k["resources"]))
        {
            var path = Path.GetFullPath(Path.Combine(directory, r));
            if (Directory.Exists(path)) objects.AddRange(Build(path));
            else objects.AddRange(Yaml.LoadAll(File.ReadAllText(Inside(directory, path))).Select(AsObject));
        }
        foreach (var g in Items(k["configMapGenerator"])) Generate(directory, g, objects);
        foreach (var p in Items(k["patches"])) Patch(directory, p, objects);
        foreach (var image in Items(k["images"])) SetImage(image, objects);
        foreach (var o in objects)
            if (objects.Count(x => Key(x) == Key(o)) > 1) throw new KustomizeException($"{directory}: {Key(o)} is defined twice");
        return objects;
    }

    private static void Generate(string directory, JsonObject g, List<JsonObject> objects)
    {
        var name = Text(g, "name");
        var options = g["options"] as JsonObject;
        if (options?["disableNameSuffixHash"]?.GetValue<bool>() != true)
            throw new KustomizeException($"configMapGenerator {name}: only disableNameSuffixHash: true is supported (the content hash suffix is not implemented)");
        var data = new JsonObject();
        foreach (var f in Strings(g["files"]))
        {
            if (f.Contains('=', StringComparison.Ordinal)) throw new KustomizeException($"configMapGenerator {name}: key=file is not supported");
            var path = Inside(directory, Path.GetFullPath(Path.Combine(directory, f)));
            data[Path.GetFileName(path)] = File.ReadAllText(path);
        }
        var metadata = new JsonObject { ["name"] = name };
        if (options?["labels"] is JsonObject labels) metadata["labels"] = labels.DeepClone();
        var map = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "ConfigMap", ["metadata"] = metadata, ["data"] = data };
        var behavior = g["behavior"]?.GetValue<string>() ?? "create";
        var existing = objects.FindIndex(o => Key(o) == ("ConfigMap", name));
        switch (behavior)
        {
            case "create" when existing < 0:
                objects.Add(map);
                break;
            case "replace" when existing >= 0:
                objects[existing] = map;
                break;
            case "merge" when existing >= 0:
                var old = objects[existing];
                foreach (var (key, value) in data) old["data"]![key] = value!.DeepClone();
                if (metadata["labels"] is JsonObject more)
                {
                    var oldLabels = (JsonObject)(old["metadata"]!["labels"] ??= new JsonObject());
                    foreach (var (key, value) in more) oldLabels[key] = value!.DeepClone();
                }
                break;
            default:
                throw new KustomizeException($"configMapGenerator {name}: behavior {behavior} {(existing < 0 ? "needs an existing ConfigMap" : "but the ConfigMap exists")}");
        }
    }

    private static void Patch(string directory, JsonObject p, List<JsonObject> objects)
    {
        var file = Inside(directory, Path.GetFullPath(Path.Combine(directory, Text(p, "path"))));
        var target = p["target"] as JsonObject ?? throw new KustomizeException($"{file}: a patch needs a target");
        var kind = Text(target, "kind");
        var name = Text(target, "name");
        foreach (var (key, _) in p)
            if (key is not ("path" or "target")) throw new KustomizeException($"{file}: patch field '{key}' is not supported");
        var ops = Yaml.LoadOne(File.ReadAllText(file)) as JsonArray
                  ?? throw new KustomizeException($"{file}: only JSON 6902 patches (a list of operations) are supported");
        var matched = objects.Where(o => Key(o) == (kind, name)).ToList();
        if (matched.Count == 0) throw new KustomizeException($"{file}: no {kind} {name} to patch");
        foreach (var o in matched)
            foreach (var op in ops.Cast<JsonObject>())
                JsonPatch.Apply(o, op, file);
    }

    private static void SetImage(JsonObject image, List<JsonObject> objects)
    {
        var name = Text(image, "name");
        foreach (var o in objects)
        {
            if (o["spec"]?["template"]?["spec"] is not JsonObject pod) continue;
            foreach (var list in new[] { pod["containers"], pod["initContainers"] })
                foreach (var c in Items(list))
                {
                    var current = c["image"]!.GetValue<string>();
                    var (repository, tag) = SplitImage(current);
                    if (repository != name) continue;
                    var newName = image["newName"]?.GetValue<string>() ?? repository;
                    var newTag = image["newTag"]?.GetValue<string>() ?? tag;
                    c["image"] = newTag is null ? newName : $"{newName}:{newTag}";
                }
        }
    }

    private static (string Repository, string? Tag) SplitImage(string image)
    {
        if (image.Contains('@', StringComparison.Ordinal)) throw new KustomizeException($"image {image}: digests are not supported");
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..]) : (image, null);
    }

    /// <summary>The file, if it lies in or below the kustomization folder (kustomize's LoadRestrictionsRootOnly).</summary>
    private static string Inside(string directory, string path)
    {
        var root = directory.EndsWith('/') ? directory : directory + "/";
        if (!path.StartsWith(root, StringComparison.Ordinal))
            throw new KustomizeException($"security; file '{path}' is not in or below '{directory}'");
        if (!File.Exists(path)) throw new KustomizeException($"{path}: no such file");
        return path;
    }

    public static (string Kind, string Name) Key(JsonObject o) =>
        (o["kind"]?.GetValue<string>() ?? "", o["metadata"]?["name"]?.GetValue<string>() ?? "");

    private static JsonObject AsObject(JsonNode n) => n as JsonObject ?? throw new KustomizeException("a resource document is not a mapping");

    private static string Text(JsonObject o, string key) =>
        o[key]?.GetValue<string>() ?? throw new KustomizeException($"missing '{key}' in {o.ToJsonString()}");

    private static IEnumerable<string> Strings(JsonNode? n) => (n as JsonArray ?? []).Select(x => x!.GetValue<string>());

    private static IEnumerable<JsonObject> Items(JsonNode? n) => (n as JsonArray ?? []).Select(x => (JsonObject)x!);
}

/// <summary>RFC 6902 operations add, remove, replace and test on a JSON document, with RFC 6901 pointers.</summary>
public static class JsonPatch
{
    public static void Apply(JsonObject document, JsonObject op, string source = "patch")
    {
        var kind = op["op"]?.GetValue<string>() ?? throw new KustomizeException($"{source}: an operation without 'op'");
        var path = op["path"]?.GetValue<string>() ?? throw new KustomizeException($"{source}: {kind} without 'path'");
        var tokens = Parse(path);
        if (tokens.Count == 0) throw new KustomizeException($"{source}: {kind} on the whole document is not supported");
        var parent = Resolve(document, tokens.Take(tokens.Count - 1), path, source);
        var last = tokens[^1];
        switch (kind, parent)
        {
            case ("test", _):
                var actual = Resolve(document, tokens, path, source);
                if (!JsonNode.DeepEquals(actual, op["value"]))
                    throw new KustomizeException($"{source}: test failed at {path}: {actual?.ToJsonString() ?? "null"} is not {op["value"]?.ToJsonString() ?? "null"}");
                break;
            case ("add", JsonObject o):
                o[last] = op["value"]?.DeepClone();
                break;
            case ("add", JsonArray a):
                var at = last == "-" ? a.Count : Index(a, last, path, source, allowEnd: true);
                a.Insert(at, op["value"]?.DeepClone());
                break;
            case ("replace", JsonObject o) when o.ContainsKey(last):
                o[last] = op["value"]?.DeepClone();
                break;
            case ("replace", JsonArray a):
                a[Index(a, last, path, source, allowEnd: false)] = op["value"]?.DeepClone();
                break;
            case ("remove", JsonObject o) when o.ContainsKey(last):
                o.Remove(last);
                break;
            case ("remove", JsonArray a):
                a.RemoveAt(Index(a, last, path, source, allowEnd: false));
                break;
            default:
                throw new KustomizeException($"{source}: cannot {kind} at {path}");
        }
    }

    private static List<string> Parse(string pointer)
    {
        if (pointer == "") return [];
        if (!pointer.StartsWith('/')) throw new KustomizeException($"'{pointer}' is not a JSON pointer");
        return pointer[1..].Split('/').Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToList();
    }

    private static JsonNode? Resolve(JsonNode root, IEnumerable<string> tokens, string path, string source)
    {
        var node = root;
        foreach (var t in tokens)
            node = node switch
            {
                JsonObject o when o.ContainsKey(t) => o[t],
                JsonArray a => a[Index(a, t, path, source, allowEnd: false)],
                _ => throw new KustomizeException($"{source}: {path} does not exist (at '{t}')"),
            };
        return node;
    }

    private static int Index(JsonArray a, string token, string path, string source, bool allowEnd)
    {
        if (!int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var i) || i > a.Count || (i == a.Count && !allowEnd))
            throw new KustomizeException($"{source}: {path}: index '{token}' is outside the array of {a.Count}");
        return i;
    }
}

public sealed class KustomizeException(string message) : Exception(message);
