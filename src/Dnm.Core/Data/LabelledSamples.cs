using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Dnm.Core.Config;

namespace Dnm.Core.Data;

/// <summary>
/// Which training samples' labels semi-supervised training uses (<see cref="DnmConfig.LabelledFraction"/> or
/// <see cref="DnmConfig.Labelled"/>). A sample's membership depends on its key (and the seed) alone, so every worker,
/// whatever the world size, and a resumed run find the same set; the rest of the samples train unlabelled.
/// </summary>
public sealed class LabelledSamples
{
    private readonly bool[] labelled;

    private LabelledSamples(bool[] labelled, string description)
    {
        this.labelled = labelled;
        Description = description;
        Indices = Enumerable.Range(0, labelled.Length).Where(i => labelled[i]).ToArray();
    }

    /// <summary>The labelled samples' indices in the training set, ascending.</summary>
    public int[] Indices { get; }

    public int Count => Indices.Length;

    /// <summary>How the set was chosen and how large it is, for the run's log.</summary>
    public string Description { get; }

    public bool IsLabelled(int index) => labelled[index];

    /// <summary>
    /// The classes whose per-node counts the map learns: the dataset's, in semi-supervised training; 0 when unsupervised.
    /// A dataset without labels cannot train semi-supervised (<see cref="DataException"/>).
    /// </summary>
    public static int Classes(DnmConfig config, IImageDataset train)
    {
        if (!config.SemiSupervised) return 0;
        if (!train.HasLabels)
            throw new DataException($"{train.Name} has no labels, so semi-supervised training (labelled-fraction, labelled) has none to use: drop the flag or use a labelled dataset");
        return train.ClassNames.Count;
    }

    /// <summary>
    /// The labelled set <paramref name="config"/> asks for on <paramref name="train"/>, or null when training is
    /// unsupervised. A dataset without labels, an unreadable key file or one that names no training sample is a
    /// <see cref="DataException"/>.
    /// </summary>
    public static LabelledSamples? For(DnmConfig config, IImageDataset train)
    {
        if (!config.SemiSupervised) return null;
        if (!train.HasLabels)
            throw new DataException($"{train.Name} has no labels, so semi-supervised training (labelled-fraction, labelled) has none to use: drop the flag or use a labelled dataset");
        var mask = new bool[train.Count];
        if (config.LabelledFraction is { } fraction)
        {
            for (int i = 0; i < mask.Length; i++) mask[i] = IsChosen(train.Key(i), fraction, config.Seed) && train.Label(i) >= 0;
            return new LabelledSamples(mask, $"{mask.Count(m => m)} of {train.Count} training samples labelled (fraction {fraction}, seed {config.Seed})");
        }
        var path = config.Labelled!;
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException($"labelled: the key file {path} cannot be read ({e.Message}): give a file of sample keys, one a line");
        }
        var keys = new HashSet<string>(lines.Select(l => l.Trim()).Where(l => l.Length > 0), StringComparer.Ordinal);
        var found = 0;
        for (int i = 0; i < mask.Length; i++)
        {
            if (!keys.Contains(train.Key(i))) continue;
            found++;
            mask[i] = train.Label(i) >= 0;
        }
        if (found == 0)
            throw new DataException($"labelled: none of the {keys.Count} keys in {path} is a key of {train.Name} (for example '{(train.Count > 0 ? train.Key(0) : "")}'): list the training samples' keys, one a line");
        var missing = keys.Count - found;
        return new LabelledSamples(mask, $"{mask.Count(m => m)} of {train.Count} training samples labelled (from {path}" +
                                         (missing > 0 ? $"; {missing} of its {keys.Count} keys are not in this training set)" : ")"));
    }

    /// <summary>
    /// Whether the sample with <paramref name="key"/> is labelled at <paramref name="fraction"/>: the first eight bytes of
    /// the SHA-256 of "labelled/&lt;seed&gt;/&lt;key&gt;", read as a big-endian fraction of 2^64, lie below it. Salted
    /// apart from the test split's hash (<see cref="DatasetView.IsHeldOut"/>), so the two choices are independent.
    /// </summary>
    public static bool IsChosen(string key, double fraction, ulong seed)
    {
        if (fraction >= 1) return true;
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"labelled/{seed}/{key}"), hash);
        ulong h = BinaryPrimitives.ReadUInt64BigEndian(hash);
        return (h >> 11) < (ulong)(fraction * (1UL << 53));
    }
}
