using System.Text.Json;
using System.Text.Json.Serialization;

namespace Dnm.Core.Data.Shards;

/// <summary>One shard of a split as <c>manifest.json</c> lists it.</summary>
public sealed record ShardFile(
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("sha256")] string Sha256);

/// <summary>The image shape a manifest records: what every image of the shards decodes to.</summary>
public sealed record ManifestShape(
    [property: JsonPropertyName("channels")] int Channels,
    [property: JsonPropertyName("height")] int Height,
    [property: JsonPropertyName("width")] int Width)
{
    public ImageShape ToShape() => new(Channels, Height, Width);
}

/// <summary>
/// <c>manifest.json</c> of a shard set written by <c>dnm data pack</c>: the shards of each split with their sample counts,
/// sizes and SHA-256, the class names (index = the integer in <c>&lt;key&gt;.cls</c>) and the image shape. Shards from
/// elsewhere (Python's webdataset or tarfile, img2dataset, GNU tar) need none; with one, every shard it lists is checked
/// against its size and SHA-256 before training reads it.
/// </summary>
public sealed record ShardManifest
{
    public const string FileName = "manifest.json";
    public const string FormatName = "dnm-shards";

    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;
    [JsonPropertyName("version")] public int Version { get; init; } = 1;
    /// <summary>The dataset spec it was packed from (information only).</summary>
    [JsonPropertyName("source")] public string? Source { get; init; }
    [JsonPropertyName("image")] public ManifestShape? Image { get; init; }
    [JsonPropertyName("classes")] public IReadOnlyList<string> Classes { get; init; } = [];
    /// <summary>The held-out fraction a key-hash split used, when the source had no test split of its own.</summary>
    [JsonPropertyName("test_fraction")] public double? TestFraction { get; init; }
    /// <summary>Split name (train, test) → its shards, in order.</summary>
    [JsonPropertyName("splits")] public IReadOnlyDictionary<string, IReadOnlyList<ShardFile>> Splits { get; init; } =
        new Dictionary<string, IReadOnlyList<ShardFile>>();

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses a manifest; <paramref name="source"/> names it in the error.</summary>
    /// <exception cref="DataException">Not JSON, not a Dnm shard manifest, or a newer version.</exception>
    public static ShardManifest Parse(string json, string source)
    {
        ShardManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ShardManifest>(json, Json);
        }
        catch (JsonException e)
        {
            throw new DataException($"{source} is not a valid shard manifest ({e.Message}). Write it again with `dnm data pack`, or remove it to read the shards without one.");
        }
        if (manifest is null || manifest.Format != FormatName)
            throw new DataException($"{source} is not a Dnm shard manifest (its format is not \"{FormatName}\"). Remove it, or write it with `dnm data pack`.");
        if (manifest.Version != 1)
            throw new DataException($"{source} has manifest version {manifest.Version}; this Dnm reads version 1. Upgrade Dnm or pack the data again.");
        foreach (var (split, files) in manifest.Splits)
            foreach (var f in files)
                if (f.Samples < 0 || f.Bytes < 0 || f.Sha256.Length != 64 || f.File.Contains('/') || f.File.Contains('\\') || f.File.StartsWith('.'))
                    throw new DataException($"{source} lists shard '{f.File}' of split {split} with invalid fields. Write the manifest again with `dnm data pack`.");
        return manifest;
    }

    /// <summary>The listed shard called <paramref name="fileName"/>, in any split.</summary>
    public ShardFile? Find(string fileName) =>
        Splits.Values.SelectMany(f => f).FirstOrDefault(f => f.File == fileName);
}
