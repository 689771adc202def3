using System.Globalization;
using System.Text;

namespace Dnm.Core.Data.Shards;

/// <summary>The shards of one split, where to read them, and the manifest that describes them (when there is one).</summary>
public sealed record ShardSource(IShardStore Store, ShardManifest? Manifest, string Description);

/// <summary>
/// Resolves the part after <c>shards:</c> of a dataset spec:
/// <list type="bullet">
/// <item>a folder: its manifest.json's shards, else <c>train-*.tar</c> (and <c>test-*.tar</c> for the test split), else every <c>*.tar</c>;</item>
/// <item>a local brace pattern: <c>/data/train-{000000..000127}.tar</c> (ranges keep the first bound's zero padding; <c>{a,b}</c> lists too);</item>
/// <item>an http(s) URL pattern: <c>https://host/data/train-{000000..000127}.tar</c>, read with Range requests
/// (<see cref="HttpShardStore"/>); a presigned S3 URL or a public GCS URL works as it is.</item>
/// </list>
/// A manifest.json beside the shards, when present, gives the class names and image shape and lists the test split.
/// </summary>
public static class ShardSpec
{
    /// <summary>Most shards one pattern may name: a typo such as {0..99999999} fails here, not by exhausting memory.</summary>
    public const int MaxShards = 1_000_000;

    /// <summary>The shards of <paramref name="split"/> ("train" or "test"), or null where the spec has no such split.</summary>
    public static ShardSource? Resolve(string spec, string split, HttpMessageHandler? http = null)
    {
        if (spec.Length == 0)
            throw new DatasetSpecException("The spec shards: needs a folder, a brace pattern or a URL pattern, e.g. shards:/data/shards or shards:https://host/train-{000000..000009}.tar.");
        if (spec.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || spec.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            return ResolveHttp(spec, split, http);
        return Directory.Exists(spec) ? ResolveFolder(spec, split) : ResolveLocalPattern(spec, split);
    }

    private static ShardSource? ResolveFolder(string dir, string split)
    {
        var manifest = ReadManifest(Path.Combine(dir, ShardManifest.FileName));
        List<string> files;
        if (manifest is not null)
        {
            if (!manifest.Splits.TryGetValue(split, out var listed) || listed.Count == 0) return null;
            files = listed.Select(f => Path.Combine(dir, f.File)).ToList();
        }
        else
        {
            files = Tars(dir, $"{split}-*.tar");
            if (files.Count == 0 && split == "train")
            {
                files = Tars(dir, "*.tar").Where(f => !Path.GetFileName(f).StartsWith("test-", StringComparison.Ordinal)).ToList();
                if (files.Count == 0)
                    throw new DataException($"{dir} holds no .tar shards. Pack a dataset into it with `dnm data pack --from <spec> --out {dir}`, or point shards: at the folder that holds them.");
            }
            if (files.Count == 0) return null;
        }
        return new ShardSource(new LocalShardStore(files), manifest, $"shards:{dir}/{split}");
    }

    private static ShardSource? ResolveLocalPattern(string pattern, string split)
    {
        var files = Expand(pattern);
        string dir = Path.GetDirectoryName(Path.GetFullPath(files[0])) ?? ".";
        var manifest = ReadManifest(Path.Combine(dir, ShardManifest.FileName));
        if (split == "test")
        {
            // A pattern names the training shards; the test split exists only where a manifest beside them lists one.
            if (manifest is null || !manifest.Splits.TryGetValue("test", out var test) || test.Count == 0) return null;
            return new ShardSource(new LocalShardStore(test.Select(f => Path.Combine(dir, f.File)).ToList()), manifest, $"shards:{dir}/test");
        }
        var missing = files.FirstOrDefault(f => !File.Exists(f));
        if (missing is not null)
            throw new DataException($"shard {missing} does not exist ({files.Count} shards named by {pattern}). Check the pattern's range.");
        return new ShardSource(new LocalShardStore(files), manifest, $"shards:{pattern}");
    }

    private static ShardSource? ResolveHttp(string pattern, string split, HttpMessageHandler? http)
    {
        var urls = Expand(pattern).Select(u => Uri.TryCreate(u, UriKind.Absolute, out var uri) ? uri
            : throw new DatasetSpecException($"'{u}' is not a valid URL (from the pattern {pattern}).")).ToList();
        var store = new HttpShardStore(urls, http);
        try
        {
            var manifestText = store.ReadSibling(ShardManifest.FileName);
            var manifest = manifestText is null ? null : ShardManifest.Parse(manifestText, new Uri(urls[0], ShardManifest.FileName).ToString());
            if (split == "train") return new ShardSource(store, manifest, $"shards:{pattern}");
            store.Dispose();
            if (manifest is null || !manifest.Splits.TryGetValue("test", out var test) || test.Count == 0) return null;
            var testUrls = test.Select(f => new Uri(urls[0], Uri.EscapeDataString(f.File) + urls[0].Query)).ToList();
            return new ShardSource(new HttpShardStore(testUrls, http), manifest, $"shards:{new Uri(urls[0], ".")}test");
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private static ShardManifest? ReadManifest(string path) =>
        File.Exists(path) ? ShardManifest.Parse(File.ReadAllText(path), path) : null;

    private static List<string> Tars(string dir, string pattern) =>
        Directory.EnumerateFiles(dir, pattern, SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Brace expansion as webdataset and bash do it: <c>{000..012}</c> is a zero-padded range, <c>{a,b}</c> a list; several
    /// braces multiply. A pattern without braces is itself.
    /// </summary>
    public static IReadOnlyList<string> Expand(string pattern)
    {
        var results = new List<string> { "" };
        int i = 0;
        var literal = new StringBuilder();
        while (i < pattern.Length)
        {
            if (pattern[i] != '{')
            {
                literal.Append(pattern[i++]);
                continue;
            }
            int close = pattern.IndexOf('}', i);
            if (close < 0) throw new DatasetSpecException($"'{pattern}' has a '{{' without its '}}'. Write ranges as {{000000..000127}}.");
            var prefix = literal.ToString();
            literal.Clear();
            var options = Alternatives(pattern[(i + 1)..close], pattern);
            if ((long)results.Count * options.Count > MaxShards)
                throw new DatasetSpecException($"'{pattern}' names more than {MaxShards} shards. Check the range.");
            results = results.SelectMany(r => options.Select(o => r + prefix + o)).ToList();
            i = close + 1;
        }
        var tail = literal.ToString();
        return results.Select(r => r + tail).ToList();
    }

    private static List<string> Alternatives(string body, string pattern)
    {
        int dots = body.IndexOf("..", StringComparison.Ordinal);
        if (dots < 0)
        {
            var list = body.Split(',').ToList();
            if (list.Count < 2 || list.Any(a => a.Length == 0))
                throw new DatasetSpecException($"'{{{body}}}' in '{pattern}' is neither a range {{000..127}} nor a list {{a,b}}.");
            return list;
        }
        string from = body[..dots], to = body[(dots + 2)..];
        if (!long.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out var a)
            || !long.TryParse(to, NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b < a)
            throw new DatasetSpecException($"'{{{body}}}' in '{pattern}' is not a range of non-negative integers with the lower bound first, e.g. {{000000..000127}}.");
        if (b - a >= MaxShards)
            throw new DatasetSpecException($"'{{{body}}}' in '{pattern}' names more than {MaxShards} shards. Check the range.");
        string format = "D" + from.Length.ToString(CultureInfo.InvariantCulture);
        var range = new List<string>((int)(b - a + 1));
        for (long v = a; v <= b; v++) range.Add(v.ToString(format, CultureInfo.InvariantCulture));
        return range;
    }
}
