using System.Formats.Tar;
using System.Globalization;
using System.Text;

namespace Dnm.Core.Data.Shards;

/// <summary>One sample of a shard: its key, where its image's bytes lie, and its label (-1: none).</summary>
public readonly record struct ShardSample(string Key, long Offset, int Length, int Label);

/// <summary>A sample the scan left out under <c>on-bad-image skip</c>, and why.</summary>
public readonly record struct SkippedSample(string Key, string Reason);

/// <summary>
/// The samples of one WebDataset shard. A sample is the run of consecutive tar members that share a key: the member
/// name up to the first dot of its file name (<c>a/b/0001.jpg</c> and <c>a/b/0001.cls</c> are sample <c>a/b/0001</c>).
/// Its image is the <c>.jpg|.jpeg|.png|.webp</c> member, its label the integer text of <c>.cls</c>; other members
/// (<c>.json</c>, <c>.txt</c>) are carried but not read. The tar itself is read by System.Formats.Tar, so ustar, pax and
/// GNU archives (Python's tarfile and webdataset, img2dataset, GNU tar) all read unchanged.
/// </summary>
public sealed class ShardIndex
{
    /// <summary>The sidecar beside a shard: <c>train-000000.tar.idx</c>.</summary>
    public const string Suffix = ".idx";

    private const string Magic = "# dnm-shard-index 1";
    private static readonly string[] ImageExtensions = ["jpg", "jpeg", "png", "webp"];

    public ShardIndex(long shardBytes, IReadOnlyList<ShardSample> samples, IReadOnlyList<SkippedSample> skipped)
    {
        ShardBytes = shardBytes;
        Samples = samples;
        Skipped = skipped;
    }

    /// <summary>The shard's size when indexed (a sidecar for another size is stale).</summary>
    public long ShardBytes { get; }

    public IReadOnlyList<ShardSample> Samples { get; }

    public IReadOnlyList<SkippedSample> Skipped { get; }

    /// <summary>Whether any sample has a <c>.cls</c> label.</summary>
    public bool HasLabels => Samples.Any(s => s.Label >= 0);

    /// <summary>
    /// Reads every member header of a shard (seeking past the data where the stream can seek, so a local shard costs its
    /// headers only). A corrupt header, a truncated member or a sample without an image is a <see cref="DataException"/>
    /// naming the shard and the key, or is left out and listed in <see cref="Skipped"/> under <see cref="BadFilePolicy.Skip"/>.
    /// </summary>
    public static ShardIndex Scan(Stream shard, string name, BadFilePolicy onBad)
    {
        var samples = new List<ShardSample>();
        var skipped = new List<SkippedSample>();
        var counting = shard.CanSeek ? null : shard as CountingStream ?? new CountingStream(shard);
        var stream = counting ?? shard;
        string? key = null;
        long offset = -1;
        int length = 0, label = -1;
        string? problem = null;

        void Flush()
        {
            if (key is null) return;
            problem ??= offset < 0 ? "has no image member (.jpg, .jpeg, .png or .webp)" : null;
            if (problem is null) samples.Add(new ShardSample(key, offset, length, label));
            else Bad(key, problem);
            (key, offset, length, label, problem) = (null, -1, 0, -1, null);
        }

        void Bad(string sampleKey, string reason)
        {
            if (onBad == BadFilePolicy.Fail)
                throw new DataException($"shard {name}: sample '{sampleKey}' {reason}. Repair or re-pack the shard, or train with --on-bad-image skip to leave such samples out.");
            skipped.Add(new SkippedSample(sampleKey, reason));
        }

        using var reader = new TarReader(stream, leaveOpen: true);
        while (true)
        {
            TarEntry? entry;
            try
            {
                entry = reader.GetNextEntry(copyData: false);
            }
            // System.Formats.Tar reports a bad archive with many exception types: InvalidDataException, FormatException,
            // EndOfStreamException, OverflowException, NotSupportedException for an entry type it does not read (a GNU
            // sparse file) and InvalidOperationException for an oversized extended header (both found by fuzzing).
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException or DataException))
            {
                // A broken header ends the readable part of the archive: nothing after it can be located.
                throw new DataException($"shard {name}: the tar is corrupt after sample '{key ?? samples.LastOrDefault().Key ?? "(none)"}' ({e.Message}). Re-pack or re-download the shard.");
            }
            if (entry is null) break;
            // System.Formats.Tar does not check header checksums: a flipped bit in a name or size would silently
            // misplace every sample after it, so the header each entry came from is checked here.
            if (!HeaderChecksumOk(stream, counting, entry))
                throw new DataException($"shard {name}: the tar header of member '{entry.Name}' is corrupt (checksum mismatch) after sample '{key ?? samples.LastOrDefault().Key ?? "(none)"}'. Re-pack or re-download the shard.");
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile))
                continue;
            var (memberKey, extension) = Split(entry.Name);
            if (memberKey != key)
            {
                Flush();
                key = memberKey;
            }
            long dataStart = counting?.Position ?? entry.DataOffset;
            if (stream.CanSeek && dataStart + entry.Length > stream.Length)
            {
                problem = $"is truncated: its member {entry.Name} needs {entry.Length} bytes from byte {dataStart}, but the shard ends at {stream.Length}";
                Flush();
                break;
            }
            if (ImageExtensions.Contains(extension))
            {
                if (offset >= 0) problem ??= $"has two images ({entry.Name} and another)";
                else if (entry.Length > int.MaxValue) problem ??= $"has an image of {entry.Length} bytes, larger than 2 GB";
                else (offset, length) = (dataStart, (int)entry.Length);
            }
            else if (extension == "cls")
            {
                label = ReadLabel(entry, out var error);
                if (error is not null) problem ??= error;
            }
        }
        Flush();
        return new ShardIndex(stream.CanSeek ? stream.Length : counting!.Position, samples, skipped);
    }

    private static bool HeaderChecksumOk(Stream stream, CountingStream? counting, TarEntry entry)
    {
        Span<byte> header = stackalloc byte[512];
        if (counting is not null)
        {
            if (!counting.TryGetTail(header)) return true;
        }
        else
        {
            long position = stream.Position;
            stream.Position = entry.DataOffset - 512;
            stream.ReadExactly(header);
            stream.Position = position;
        }
        long sum = 0, signedSum = 0;
        for (int i = 0; i < 512; i++)
        {
            int b = i is >= 148 and < 156 ? 32 : header[i];
            sum += b;
            signedSum += i is >= 148 and < 156 ? 32 : (sbyte)header[i];
        }
        long stored = 0;
        foreach (var c in header.Slice(148, 8))
        {
            if (c is (byte)' ' or 0) { if (stored > 0) break; continue; }
            if (c is < (byte)'0' or > (byte)'7') return false;
            stored = stored * 8 + (c - '0');
        }
        return stored == sum || stored == signedSum;
    }

    /// <summary>WebDataset's rule: the key is the path up to the first dot of the file name; the rest, lower-cased, is the extension.</summary>
    public static (string Key, string Extension) Split(string memberName)
    {
        int slash = memberName.LastIndexOf('/');
        int dot = memberName.IndexOf('.', slash + 1);
        return dot < 0 ? (memberName, "") : (memberName[..dot], memberName[(dot + 1)..].ToLowerInvariant());
    }

    private static int ReadLabel(TarEntry entry, out string? error)
    {
        error = null;
        if (entry.Length > 32 || entry.DataStream is null)
        {
            error = $"has a label member {entry.Name} of {entry.Length} bytes, not an integer";
            return -1;
        }
        using var text = new StreamReader(entry.DataStream, Encoding.UTF8, leaveOpen: true);
        var value = text.ReadToEnd().Trim();
        if (int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var label) && label is >= 0 and < 1_000_000)
            return label;
        error = $"has the label '{(value.Length > 16 ? value[..16] + "…" : value)}' in {entry.Name}, not an integer in [0, 1000000)";
        return -1;
    }

    /// <summary>The sidecar's text: a header with the shard's size, then one tab-separated line per sample.</summary>
    public string ToText()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{Magic} bytes={ShardBytes} samples={Samples.Count}\n");
        foreach (var s in Samples)
            text.Append(CultureInfo.InvariantCulture, $"{s.Offset}\t{s.Length}\t{s.Label}\t{s.Key}\n");
        return text.ToString();
    }

    /// <summary>A sidecar written by <see cref="ToText"/>, or null when it is for another size of shard (stale) or unreadable.</summary>
    public static ShardIndex? TryParse(string text, long shardBytes)
    {
        var lines = text.Split('\n');
        if (lines.Length < 1 || !lines[0].StartsWith(Magic, StringComparison.Ordinal)) return null;
        var fields = lines[0][Magic.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length != 2 || fields[0] != $"bytes={shardBytes}" || !fields[1].StartsWith("samples=", StringComparison.Ordinal)
            || !int.TryParse(fields[1]["samples=".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            || count < 0 || count > lines.Length)
            return null;
        var samples = new List<ShardSample>(count);
        for (int i = 1; i <= count; i++)
        {
            var parts = lines[i].Split('\t', 4);
            if (parts.Length != 4
                || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || !int.TryParse(parts[2], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var label)
                || offset + length > shardBytes || label < -1 || parts[3].Length == 0)
                return null;
            samples.Add(new ShardSample(parts[3], offset, length, label));
        }
        return new ShardIndex(shardBytes, samples, []);
    }
}
