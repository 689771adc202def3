using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Dnm.Core.Data.Shards;

namespace Dnm.Core.Data;

/// <summary>
/// The identity of the files a dataset spec reads, so that cluster nodes can prove they train on the same data: a SHA-256
/// over each file's name (relative to the dataset, so nodes may mount it at different paths), size and SHA-256. Shards with
/// a manifest take the manifest's SHA-256s (checked against the shards when they are opened) and hash nothing; IDX files,
/// folders and shards without a manifest are hashed (remote shards without one by name and size only: hashing them would
/// download them). <paramref name="Source"/> says what was digested, for messages.
/// </summary>
public sealed record DatasetDigest(string Sha256, string Source)
{
    /// <summary>The first 16 hex digits: enough to tell two datasets apart in a message.</summary>
    public string Short => Sha256[..16];

    public override string ToString() => $"{Short} ({Source})";

    /// <summary>The digest of <paramref name="split"/> of <paramref name="spec"/> (already opened, so its files exist).</summary>
    public static DatasetDigest Of(string spec, string split, string dataDir)
    {
        spec = spec.Trim();
        var entries = new List<(string Name, long Bytes, string Sha256)>();
        switch (spec)
        {
            case "mnist" or "fashion-mnist":
            {
                var dir = Path.Combine(dataDir, spec);
                var prefix = split == "train" ? "train" : "t10k";
                foreach (var name in new[] { $"{prefix}-images-idx3-ubyte", $"{prefix}-labels-idx1-ubyte" })
                    entries.Add(Hashed(File.Exists(Path.Combine(dir, name)) ? Path.Combine(dir, name) : Path.Combine(dir, name + ".gz"), dir));
                break;
            }
            case var s when s.StartsWith("idx:", StringComparison.Ordinal):
                foreach (var path in s["idx:".Length..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                    entries.Add(Hashed(path, Path.GetDirectoryName(Path.GetFullPath(path))!));
                break;
            case var s when s.StartsWith("folder:", StringComparison.Ordinal):
            {
                var root = Path.GetFullPath(s["folder:".Length..]);
                foreach (var path in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                    entries.Add(Hashed(path, root));
                break;
            }
            case var s when s.StartsWith("shards:", StringComparison.Ordinal):
            {
                var source = ShardSpec.Resolve(s["shards:".Length..], split);
                if (source is null) break;
                using var store = source.Store;
                for (var shard = 0; shard < store.Count; shard++)
                {
                    var name = store.FileName(shard);
                    if (source.Manifest?.Find(name) is { } listed) entries.Add((name, listed.Bytes, listed.Sha256));
                    else if (File.Exists(store.Describe(shard))) entries.Add(Hashed(store.Describe(shard), Path.GetDirectoryName(store.Describe(shard))!));
                    else entries.Add((name, store.Length(shard), "unhashed"));
                }
                break;
            }
            default:
                throw new DatasetSpecException($"Unknown dataset '{spec}'.");
        }
        var text = new StringBuilder();
        foreach (var (name, bytes, sha) in entries) text.Append(CultureInfo.InvariantCulture, $"{name}\t{bytes}\t{sha}\n");
        var digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
        var total = entries.Sum(e => e.Bytes);
        return new DatasetDigest(digest, $"{spec} {split}: {entries.Count} file(s), {total.ToString("N0", CultureInfo.InvariantCulture)} bytes");
    }

    private static (string Name, long Bytes, string Sha256) Hashed(string path, string root)
    {
        using var file = File.OpenRead(path);
        var sha = Convert.ToHexStringLower(SHA256.HashData(file));
        return (Path.GetRelativePath(root, path).Replace('\\', '/'), file.Length, sha);
    }
}
