"""Small files in the published shape of every source (one entry per ``SOURCES`` value), for tests to write into tmp_path.

Each entry maps the published file name to its bytes, in the layout the source's adapter
documents (separators, header or none, line ends, archive members). The compressed-input
test (``test_compressed_sources.py``) requires an entry for every source, so a new source
is covered as soon as it is registered.
"""

from __future__ import annotations

import io
import zipfile

U1, U2, U3 = "a" * 40, "b" * 40, "c" * 40
SO1, SO2, SO3 = "SOAAAAAAAAAAAAAAA1", "SOAAAAAAAAAAAAAAA2", "SOAAAAAAAAAAAAAAA3"
TR1, TR2 = "TRAAAAAAAAAAAAAAA1", "TRAAAAAAAAAAAAAAA2"
MB = "0024d72c-136f-49f2-9078-ce4b39b94d3f"
FEATS = "0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4"
INFO_HEADER = ("track_id,name,artist,spotify_preview_url,spotify_id,tags,genre,year,duration_ms,danceability,energy,"
               "key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature")


def text(*rows: str, sep: str = "\n") -> bytes:
    return (sep.join(rows) + sep).encode("utf-8")


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2011, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


KAGGLE = {
    "Music Info.csv": text(INFO_HEADER, *(f"TR{c},Song {c},Artist,http://p,sp,\"rock, indie\",Rock,2004,200000,{FEATS}"
                                          for c in "ABC")),
    "User Listening History.csv": text("track_id,user_id,playcount", "TRA,u1,3", "TRB,u2,1", "TRC,u1,2"),
}

#: The tutorial table as the notebooks write it (``to_csv`` with the index: a leading unnamed column).
MSD_TUTORIAL_HEADER = "user_id,song_id,listen_count,title,release,artist_name,year"
MSD_TUTORIAL = {
    "song_df.csv": text(MSD_TUTORIAL_HEADER,
                        f"{U1},{SO1},1,The Cove,Thicker Than Water,Jack Johnson,0",
                        f"{U1},{SO2},2,\"Nothing from Nothing\",To Die For,Billy Preston,1974",
                        f"{U2},{SO1},5,The Cove,Thicker Than Water,Jack Johnson,0",
                        f"{U3},{SO3},1,\"Entre Dos Aguas, Live\",Flamenco Para Niños,Paco De Lucia,1976"),
}

AUDIOSCROBBLER = {
    "user_artist_data.txt": text("1000002 1 55", "1000002 1000006 33", "1000002 1000007 8", "1000019 1000010 238",
                                 "1000019 1000013 11"),
    "artist_data.txt": text("1134999\t06Crazy Life", "6821360\tPang Nakarin", "1\tu2", "1000010\tAerosmith",
                            "1000013\tQueen"),
    "artist_alias.txt": text("1000006\t1", "1000007\t1000013"),
}

PUBLISHED: dict[str, dict[str, bytes]] = {
    "synthetic": KAGGLE,
    "kaggle": KAGGLE,
    "taste_profile": {
        "10000.txt": text(f"{U1}\t{SO1}\t2", f"{U1}\t{SO2}\t1", f"{U2}\t{SO1}\t5"),
        "unique_tracks.txt": text(f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One", f"{TR2}<SEP>{SO2}<SEP>Art2<SEP>Two"),
    },
    "lastfm_1k": {
        "userid-timestamp-artid-artname-traid-traname.tsv": text(
            "\t".join(("user_000001", "2009-05-04T23:08:57Z", MB, "Deep Dish", MB, "Track A")),
            "\t".join(("user_000001", "2009-05-04T13:54:10Z", "", "Deep Dish", "", "Track B")),
            "\t".join(("user_000002", "2009-05-04T13:52:04Z", MB, "Deep Dish", MB, "Track A"))),
    },
    "lastfm_360k": {
        "usersha1-artmbid-artname-plays.tsv": text(f"{U1}\t{MB}\tbetty blowtorch\t2137", f"{U1}\t\tdie Ärzte\t1099",
                                                   f"{U2}\t{MB}\tbetty blowtorch\t12"),
    },
    "hetrec_lastfm_2k": {
        "hetrec2011-lastfm-2k.zip": zip_of({
            "user_artists.dat": b"userID\tartistID\tweight\r\n2\t51\t13\r\n2\t52\t10\r\n3\t51\t1\r\n",
            "artists.dat": b"id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp\n52\tMorcheeba\tu\tp\n",
            "tags.dat": b"tagID\ttagValue\r\n1\tmetal\r\n2\tpop\r\n",
            "user_taggedartists.dat": b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n2\t51\t2\t1\t4\t2009\r\n",
        }),
    },
    "msd_tutorial": MSD_TUTORIAL,
    "audioscrobbler": AUDIOSCROBBLER,
}
