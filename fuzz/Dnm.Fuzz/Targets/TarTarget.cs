using Dnm.Core.IO;
using System.Formats.Tar;
using Dnm.Core.Data;
using Dnm.Core.Data.Shards;

namespace Dnm.Fuzz.Targets;

/// <summary>
/// The WebDataset shard reader (<see cref="ShardIndex.Scan"/>), as a local shard (seekable: headers only) and as a
/// downloaded one (forward only), under both bad-data policies; its index's text form is parsed back too. A
/// <see cref="DataException"/> naming the shard is its answer to a bad shard.
/// </summary>
public sealed class TarTarget : IFuzzTarget
{
    public string Name => "tar";

    public void Run(byte[] input)
    {
        foreach (var policy in new[] { BadFilePolicy.Fail, BadFilePolicy.Skip })
        {
            Scan(new MemoryStream(input, writable: false), policy);
            Scan(new ForwardOnly(new MemoryStream(input, writable: false)), policy);
        }
    }

    private static void Scan(Stream stream, BadFilePolicy policy)
    {
        try
        {
            var index = ShardIndex.Scan(stream, "fuzz.tar", policy);
            foreach (var sample in index.Samples)
                if (sample.Offset < 0 || sample.Length < 0 || sample.Offset + sample.Length > index.ShardBytes)
                    throw new InvalidOperationException($"sample {sample.Key} lies outside the shard");
            _ = ShardIndex.TryParse(index.ToText(), index.ShardBytes);
        }
        catch (DataException)
        {
        }
    }

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        foreach (var format in new[] { TarEntryFormat.Ustar, TarEntryFormat.Pax, TarEntryFormat.Gnu })
        {
            var tar = new MemoryStream();
            using (var writer = new TarWriter(tar, format, leaveOpen: true))
            {
                foreach (var (name, data) in new[] { ("a/000.png", new byte[] { 0x89, 0x50, 0x4E, 0x47 }), ("a/000.cls", "3"u8.ToArray()), ("a/001.jpg", new byte[] { 0xFF, 0xD8, 0xFF }), ("a/001.cls", "1"u8.ToArray()) })
                {
                    var entry = format switch
                    {
                        TarEntryFormat.Pax => (TarEntry)new PaxTarEntry(TarEntryType.RegularFile, name),
                        TarEntryFormat.Gnu => new GnuTarEntry(TarEntryType.RegularFile, name),
                        _ => new UstarTarEntry(TarEntryType.RegularFile, name),
                    };
                    entry.DataStream = new MemoryStream(data);
                    writer.WriteEntry(entry);
                }
            }
            yield return ($"{format.ToString().ToLowerInvariant()}.tar", tar.ToArray());
        }
    }

    /// <summary>A stream that cannot seek, as an HTTP body is.</summary>
    private sealed class ForwardOnly(Stream inner) : ForwardReadStream
    {
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
    }
}
